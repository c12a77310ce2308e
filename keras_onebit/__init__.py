"""keras_onebit: Keras 3 networks that store one bit per weight.

    import keras_onebit as kob
    model = kob.models.wrn_20_10(binary=True)
    kob.summary(model)

Architecture, lower first (a module imports only those above it in this list;
no import circles): base modules `errors` (the error tree, `one_line`),
`fileio` (checked reads, atomic writes, JSON), `lazy` (TensorFlow on first
use), `compat` (every private Keras / TensorFlow API, with its reason), `walk`
(every layer of a model); `quantizers` (sign quantizers, larq style) <
`constraints`, `activations`, `storage` (stochastic one-bit activation storage
for the backward pass) < `layers` (BinaryConv2D, BinaryDense) < `latent`
(latent kernels from stored signs), `summary` (memory per precision) <
`pretrained_weights` (a factory's `weights=`; reaches the hub at call time) <
`models` (factories and their registry) < `data` (data sets) < `training` (the papers' recipes,
the run loop) < `export` (the .onebit archive, TFLite and TFLite Micro
formats, expansion) and `hub` (pretrained ids, entries, checksums, weight
transfer) < `cli` (`python -m keras_onebit`).
"""

__version__ = "0.1.0"

# First: checks that TensorFlow is installed, and in `python -m keras_onebit` (only)
# loads it without its C++ log lines.
import keras_onebit._startup  # noqa: F401

if not keras_onebit._startup.overview_only():  # `python -m keras_onebit --help` needs none
    from keras_onebit import data, hub, layers, models, quantizers, storage, training
    from keras_onebit.data import DataError
    from keras_onebit.errors import BackendError, ConfigError, Error, MissingDependencyError
    from keras_onebit.export.errors import ExportError
    from keras_onebit.hub.errors import HubError
    from keras_onebit.layers import BinaryConv2D, BinaryDense, ZeroChannels
    from keras_onebit.quantizers import ApproxSign, SignWeight, SteSign
    from keras_onebit.storage import BitMaskReLU, StochasticBinaryStorage
    from keras_onebit.summary import summary

__all__ = [
    "BackendError", "ConfigError", "DataError", "Error", "ExportError", "HubError",
    "MissingDependencyError",
    "ApproxSign", "BinaryConv2D", "BinaryDense", "BitMaskReLU", "SignWeight", "SteSign",
    "StochasticBinaryStorage", "ZeroChannels", "data", "hub", "layers", "models", "quantizers",
    "storage", "summary", "training",
]
