"""Deprecated: `keras_onebit.hub.registry` is now `keras_onebit.hub.folders` (where
hub models live: the manifest and the search folders; `keras_onebit.models.registry`
is the other registry, of model factories). This alias keeps old imports working
and warns; it goes in a later release."""

import warnings

from keras_onebit.hub import folders as _renamed

warnings.warn("keras_onebit.hub.registry is deprecated: import keras_onebit.hub.folders",
              DeprecationWarning, stacklevel=2)
globals().update({k: v for k, v in vars(_renamed).items() if not k.startswith("__")})
