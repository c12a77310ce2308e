"""Deprecated alias: `keras_onebit.walk` is now `keras_onebit.layer_walk`
(a walk over every layer of a model). Old imports keep working, with a DeprecationWarning; the alias
goes in a later release."""

import warnings

from keras_onebit import layer_walk as _renamed

warnings.warn("keras_onebit.walk is deprecated: import keras_onebit.layer_walk",
              DeprecationWarning, stacklevel=2)
globals().update({k: v for k, v in vars(_renamed).items() if not k.startswith("__")})
