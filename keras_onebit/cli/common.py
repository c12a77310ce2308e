"""Checks shared by the commands: they run before anything is built or loaded,
and raise `ConfigError` with a message that names the flag and its value."""

import contextlib
import os
import pathlib

from absl import flags

from keras_onebit import _startup as startup
from keras_onebit.errors import ConfigError


def writable_folder(path, flag):
    """Creates folder `path` (and its parents) and checks that files can be
    written in it; `flag` (e.g. "--out") names it in the error."""
    folder = pathlib.Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{flag} {path}: cannot create this folder ({e.strerror or e}); "
                          f"choose a folder you may write to.") from e
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: the folder is not writable; choose another one.")
    return folder


def creatable_folder(path, flag):
    """Checks, without creating anything, that folder `path` exists or can be
    created and written to (its nearest existing ancestor is a writable folder);
    `flag` names it in the error. `writable_folder` creates it later."""
    folder = pathlib.Path(path).expanduser().absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{flag} {path}: cannot create this folder ({existing} is a file); "
                          "choose a folder you may write to.")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "the folder is" if existing == folder else f"{existing} is"
        raise ConfigError(f"{flag} {path}: {what} not writable; choose another one.")
    return folder


def existing_file(path, flag, what):
    """`path` as a Path if it exists; else a ConfigError naming `flag` and `what` it should be."""
    found = pathlib.Path(path).expanduser()
    if not found.exists():
        raise ConfigError(f"{flag} {path}: no such file; give {what}.")
    return found


def no_positional(argv, command):
    """Refuses arguments that are not flags (argv[0] is the program)."""
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments {' '.join(argv[1:])!r}: {command} takes only "
                          f"flags (python -m keras_onebit {command} --help).")


def known_model(spec, factories, hub_ids):
    """True when `spec` is a factory name, a hub id or an existing path."""
    return spec in factories or spec in hub_ids or pathlib.Path(spec).expanduser().exists()


def unknown_model(flag, spec, factories, hub_ids):
    """The ConfigError for a --model that is none of the accepted forms."""
    return ConfigError(
        f"{flag} {spec!r}: not a registered factory name, a hub id or an existing file. "
        f"Known models: factories {', '.join(factories)}; hub ids "
        f"{', '.join(hub_ids) or '(none)'} (python -m keras_onebit hub list).")


def hub_ids():
    """Every hub id the manifest and the hub folders know (none if the hub is unreadable)."""
    from keras_onebit.hub import HubError, list_ids

    try:
        return list(list_ids())
    except HubError:
        return []


def debug():
    """True when the command line was given --debug."""
    return "debug" in flags.FLAGS and bool(flags.FLAGS.debug)


def native_stderr_silenced():
    """A block whose C++ lines on stderr (the TFLite converter's "fully_quantize: ...",
    LiteRT's "Created TensorFlow Lite XNNPACK delegate") are hidden, unless --debug.
    Python exceptions still propagate and are reported after the block."""
    return contextlib.nullcontext() if debug() else startup.silenced_stderr()


def check_model(flag, spec, weights=None):
    """Refuses, before anything is built, a model spec `build_model` cannot use."""
    from keras_onebit import models

    factories = models.list_models()
    if weights and spec not in factories:
        raise ConfigError(f"--weights needs a registered factory name as --model "
                          f"({', '.join(factories)}), got {spec!r}.")
    if spec in factories and not weights and flag == "--model":
        raise ConfigError(f"{flag} {spec} is a factory name without weights: it would be "
                          "randomly initialised; give --weights (a data set name, hub id or "
                          "file) or a hub id (python -m keras_onebit hub list).")
    if spec in factories and flag != "--model":
        raise ConfigError(f"{flag} {spec} is a factory name: it would be randomly initialised; "
                          "give a hub id or a file (python -m keras_onebit hub list).")
    ids = hub_ids()
    if not known_model(spec, factories, ids):
        raise unknown_model(flag, spec, factories, ids)


def build_model(spec, weights=None, dataset="cifar10"):
    """A Keras model from a hub id / path / .keras file / factory name."""

    from keras_onebit import data, hub, models

    if spec in models.list_models():
        return models.get(spec, classes=data.CLASSES[dataset],
                          input_shape=data.INPUT_SHAPES[dataset], weights=weights)
    if weights:
        raise ConfigError(f"--weights needs a registered factory name as --model "
                         f"({', '.join(models.list_models())}), got {spec!r}.")
    if str(spec).endswith(".keras"):
        return load_keras_file(spec, "--model")
    return hub.load(spec)


def load_keras_file(path, flag):
    """The model in a .keras file; a file that is not a regular file or that Keras
    cannot read is a one-line ConfigError naming `flag`."""
    from keras_onebit import model_files

    return model_files.load_model(path, f"{flag} {path}", ConfigError)


def check_input_shape(model, images, flag, dataset):
    """Refuses, in one line, a model whose input does not take `dataset`'s images."""
    want = tuple(model.input_shape[1:])
    got = tuple(images.shape[1:])
    if len(want) != len(got) or any(w is not None and w != g for w, g in zip(want, got,
                                                                              strict=True)):
        raise ConfigError(f"{flag}: the model takes inputs of shape {want}, {dataset}'s images "
                          f"are {got}: choose the --dataset the model was built for.")


def define_model_flags(what="the model"):
    """Defines --model, --weights, --dataset and --data_dir,
    as `check_model` / `build_model` take them; `what` names the model in --help."""
    from keras_onebit import data

    flags.DEFINE_string("model", None, f"{what[0].upper() + what[1:]}: hub id, entry folder, "
                        ".onebit / .mat / .keras path, or registered factory name (required).")
    flags.DEFINE_string("weights", None, "With a factory name: weights= (data set, hub id, path).")
    flags.DEFINE_enum("dataset", "cifar10", list(data.CLASSES), "Data set.")
    flags.DEFINE_string("data_dir", None, "Folder with <dataset>.npz (default: $KERAS_ONEBIT_DATA, "
                        "../shared/data, ~/.keras/datasets).")
