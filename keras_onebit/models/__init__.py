"""Model factories and their registry.

Every factory takes the `keras.applications` arguments (`include_top`,
`weights`, `input_tensor`, `input_shape`, `pooling`, `classes`,
`classifier_activation`, `name`) and the one-bit options (`binary`, `scale`,
...). Registered names: `list_models()`; `get(name, **kwargs)` builds one.
"""

from keras_onebit.models.bireal import bireal_18, bireal_20_2, bireal_34, bireal_net
from keras_onebit.models.registry import get, get_factory, list_models, register_model
from keras_onebit.models.wrn import (
    wrn,
    wrn_16_4,
    wrn_20_1,
    wrn_20_2,
    wrn_20_4,
    wrn_20_10,
    wrn_20_20,
    wrn_26_10,
)

__all__ = [
    "bireal_18", "bireal_20_2", "bireal_34", "bireal_net",
    "get", "get_factory", "list_models", "register_model", "wrn",
    "wrn_16_4", "wrn_20_1", "wrn_20_2", "wrn_20_4", "wrn_20_10", "wrn_20_20",
    "wrn_26_10",
]
