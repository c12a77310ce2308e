"""Activations of Bi-Real Net's real-valued pre-training stages (Liu et al.,
ECCV 2018; SPEC §3): ReLU, then leaky-clip, then clip(-1, x, 1), each stage
closer to the sign function of the binary net. Registered with Keras, so
`keras.layers.Activation("keras_onebit>clip")` and saved models work.
"""

import keras
from keras import ops

LEAKY_SLOPE = 0.1  # slope of leaky_clip outside [-1, 1]


@keras.saving.register_keras_serializable(package="keras_onebit")
def clip(x):
    """clip(-1, x, 1): the last real-valued stage before sign(x).

    Args:
        x: a tensor.

    Returns:
        The tensor x clipped to [-1, 1], of x's shape and dtype.
    """
    return ops.clip(x, -1.0, 1.0)


@keras.saving.register_keras_serializable(package="keras_onebit")
def leaky_clip(x):
    """x on [-1, 1], slope `LEAKY_SLOPE` (0.1) outside: clip with a leak, so
    units past the clip keep a gradient. The paper names the stage but not
    the slope; 0.1 is our choice.

    Args:
        x: a tensor.

    Returns:
        clip(x, -1, 1) + LEAKY_SLOPE * (x - clip(x, -1, 1)), of x's shape.
    """
    clipped = ops.clip(x, -1.0, 1.0)
    return clipped + LEAKY_SLOPE * (x - clipped)


REAL_STAGES = {"relu": "relu", "leaky_clip": leaky_clip, "clip": clip}
