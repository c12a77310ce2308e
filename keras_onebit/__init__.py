"""keras_onebit: Keras 3 networks that store one bit per weight.

    import keras_onebit as kob
    model = kob.models.wrn_20_10(binary=True)
    kob.summary(model)

Architecture, lower first (a module imports only those above it in this list;
no import circles): base modules `errors` (the error tree, `one_line`),
`fileio` (checked reads, atomic writes, JSON), `model_files` (.keras
files saved atomically, loaded with checks), `lazy` (TensorFlow on first
use), `compat` (every private Keras / TensorFlow API, with its reason),
`layer_walk` (every layer of a model); `quantizers` (sign quantizers, larq
style) < `constraints`, `activations`, `activation_storage` (stochastic one-bit
storage of layer inputs for the backward pass) < `layers` (BinaryConv2D,
BinaryDense) < `latent_kernels` (latent kernels from stored signs), `summary`
(memory per precision) < `pretrained_weights` (a factory's `weights=`; reaches
the hub at call time) < `models` (factories and their registry) < `data` (data
sets) < `training` (the papers' recipes, the run loop) < `export` (the .onebit
archive, TFLite and TFLite Micro formats, expansion) and `hub` (pretrained ids,
the folders and manifest they live in, entries, checksums, weight transfer) <
`cli` (`python -m keras_onebit`); last, the deprecated aliases of renamed
modules: `storage`, `walk`, `latent` (and `hub.registry`, now `hub.folders`).
"""

__version__ = "0.1.0"

# First: checks that TensorFlow is installed, and in `python -m keras_onebit` (only)
# loads it without its C++ log lines.
import keras_onebit._startup  # noqa: F401

if not keras_onebit._startup.light_start():  # `--help` and `hub list` of the CLI need none
    from keras_onebit import activation_storage, data, hub, layers, models, quantizers, training
    from keras_onebit.activation_storage import BitMaskReLU, StochasticBinaryStorage
    from keras_onebit.data import DataError
    from keras_onebit.errors import BackendError, ConfigError, Error, MissingDependencyError
    from keras_onebit.export.errors import ExportError
    from keras_onebit.hub.errors import HubError
    from keras_onebit.layers import BinaryConv2D, BinaryDense, ZeroChannels
    from keras_onebit.quantizers import ApproxSign, SignWeight, SteSign
    from keras_onebit.summary import summary

__all__ = [
    "BackendError", "ConfigError", "DataError", "Error", "ExportError", "HubError",
    "MissingDependencyError",
    "ApproxSign", "BinaryConv2D", "BinaryDense", "BitMaskReLU", "SignWeight", "SteSign",
    "StochasticBinaryStorage", "ZeroChannels", "activation_storage", "data", "hub", "layers",
    "models", "quantizers", "storage", "summary", "training",
]

RENAMED = {"storage": "activation_storage", "walk": "layer_walk", "latent": "latent_kernels"}


def __getattr__(name):
    """`keras_onebit.storage` (and the other old module names): the deprecated
    alias module, imported on first use (it warns)."""
    if name in RENAMED:
        import importlib

        return importlib.import_module(f"keras_onebit.{name}")
    raise AttributeError(f"module 'keras_onebit' has no attribute {name!r}")
