"""Model factories and their registry."""

from keras_onebit.models.bireal import bireal_net
from keras_onebit.models.registry import get, get_factory, list_models, register_model
from keras_onebit.models.wrn import wrn


def _named_wrn(depth, width):
    def factory(classes=10, binary=True, input_shape=(32, 32, 3), **kwargs):
        return wrn(depth, width, classes=classes, binary=binary,
                   input_shape=input_shape, **kwargs)

    factory.__name__ = f"wrn_{depth}_{width}"
    factory.__qualname__ = factory.__name__
    factory.__doc__ = (
        f"WRN-{depth}-{width} (McDonnell 2018). Arguments as `wrn`: classes, "
        "binary, input_shape, learn_bn, weight_decay, classifier_activation, "
        "weights, name."
    )
    return register_model(factory)


wrn_16_4 = _named_wrn(16, 4)
wrn_20_1 = _named_wrn(20, 1)
wrn_20_2 = _named_wrn(20, 2)
wrn_20_4 = _named_wrn(20, 4)
wrn_20_10 = _named_wrn(20, 10)
wrn_20_20 = _named_wrn(20, 20)
wrn_26_10 = _named_wrn(26, 10)


@register_model
def bireal_18(classes=1000, binary=True, input_shape=(224, 224, 3), **kwargs):
    """Bi-Real-18 (Liu et al. 2018): 16 binary 3x3 convs, 10,985,472 binary
    weights. Arguments as `bireal_net`."""
    return bireal_net((4, 4, 4, 4), classes=classes, binary=binary, input_shape=input_shape,
                      **kwargs)


@register_model
def bireal_34(classes=1000, binary=True, input_shape=(224, 224, 3), **kwargs):
    """Bi-Real-34 (Liu et al. 2018): 32 binary 3x3 convs. Arguments as `bireal_net`."""
    return bireal_net((6, 8, 12, 6), classes=classes, binary=binary, input_shape=input_shape,
                      **kwargs)


__all__ = [
    "bireal_18", "bireal_34", "bireal_net",
    "get", "get_factory", "list_models", "register_model", "wrn",
    "wrn_16_4", "wrn_20_1", "wrn_20_2", "wrn_20_4", "wrn_20_10", "wrn_20_20",
    "wrn_26_10",
]
