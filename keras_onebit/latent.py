"""Deprecated alias: `keras_onebit.latent` is now `keras_onebit.latent_kernels`
(latent kernels from stored signs and scales). Old imports keep working, with a
DeprecationWarning; the alias goes in a later release."""

import warnings

from keras_onebit import latent_kernels as _renamed

warnings.warn("keras_onebit.latent is deprecated: import keras_onebit.latent_kernels",
              DeprecationWarning, stacklevel=2)
globals().update({k: v for k, v in vars(_renamed).items() if not k.startswith("__")})
