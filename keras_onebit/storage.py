"""Deprecated alias: `keras_onebit.storage` is now `keras_onebit.activation_storage`
(stochastic one-bit storage of layer inputs for
the backward pass, not of files). Old imports keep working, with a DeprecationWarning; the alias
goes in a later release."""

import warnings

from keras_onebit import activation_storage as _renamed

warnings.warn("keras_onebit.storage is deprecated: import keras_onebit.activation_storage",
              DeprecationWarning, stacklevel=2)
globals().update({k: v for k, v in vars(_renamed).items() if not k.startswith("__")})
