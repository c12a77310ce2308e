"""The model hub: checksummed pretrained one-bit models.

    from keras_onebit import hub
    hub.list()                                   # known model ids
    model = hub.load("wrn_20_10-cifar10-1bit")   # id, entry folder, .onebit or .mat path
    model = keras_onebit.models.wrn_20_10(weights="cifar10")   # by factory, any name=
    backbone = keras_onebit.models.wrn_20_2(include_top=False, weights="cifar10")
    hub.import_mcdonnell("CIFAR10_allparams.mat", "hub/")   # the authors' weights
    hub.save_entry(model, "pretrained/", "wrn_20_1-cifar10-1bit", "wrn_20_1",
                   {"classes": 10, "binary": True}, "cifar10", metrics={...})

A hub folder holds `<id>/config.json`, `<id>/weights.onebit` (the packed
one-bit archive of keras_onebit.export) and `<id>/MODEL_CARD.md`; the project's
manifest is `pretrained/index.json`. Search order for an id:
`$KERAS_ONEBIT_HUB`, `pretrained/`, `~/.keras/keras_onebit/`, then the entry's
URL. The sha256 of the weights is checked on every load. See docs/HUB.md.
"""

from keras_onebit import pretrained_weights
from keras_onebit.hub.checksum import sha256_file, verify_file
from keras_onebit.hub.entry import read_config, save_entry
from keras_onebit.hub.errors import (
    ArchitectureMismatchError,
    ChecksumError,
    DownloadError,
    FieldError,
    HubError,
    InvalidIdError,
    MatFormatError,
    ModelNotAvailableError,
    PathNotFoundError,
    TruncatedFileError,
    UnknownModelError,
)
from keras_onebit.hub.folders import default_model_id, search_dirs
from keras_onebit.hub.loading import list_entries, list_ids, load, resolve
from keras_onebit.hub.mcdonnell import import_mcdonnell
from keras_onebit.hub.transfer import copy_weights, load_weights_into

list = list_ids  # noqa: A001 - hub.list(), as timm.list_models(); nothing here calls the built-in

# The factories' `weights=` reaches the hub through this resolver below both
# (models never import the hub); `import keras_onebit` imports this package.
pretrained_weights.register_loader(load_weights_into)

__all__ = [
    "ArchitectureMismatchError", "ChecksumError", "DownloadError", "FieldError", "HubError",
    "InvalidIdError", "MatFormatError", "ModelNotAvailableError", "PathNotFoundError",
    "TruncatedFileError", "UnknownModelError", "copy_weights",
    "default_model_id", "import_mcdonnell", "list", "list_entries", "list_ids", "load",
    "load_weights_into", "read_config", "resolve", "save_entry", "search_dirs", "sha256_file",
    "verify_file",
]
