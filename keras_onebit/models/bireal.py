"""Bi-Real Net (Liu et al., ECCV 2018; SPEC §3): weights and activations
binary, one real-valued shortcut around every binary 3x3 conv.

    block:       out = BN(conv3x3_binary(sign(x))) + x
    down block:  the binary conv has stride 2; the shortcut is
                 average pool 2x2/2 -> real 1x1 conv (no bias) -> BN

Real-valued: the 7x7/2 stem conv (then BN and 3x3/2 max pool), the 1x1
shortcut convs, the final dense layer and every BN. Binary convs use the
per-channel mean |W| scale, the magnitude-aware weight gradient and the
ApproxSign activation gradient. As every model here, it takes raw pixels
(0..255) and normalizes them in an input BN with learned scale/offset.
`binary=False` gives the real-valued network of the paper's pre-training
step: ReLU in place of sign, float weights.
"""

import keras
from keras import layers

from keras_onebit.errors import ConfigError
from keras_onebit.layers import BinaryConv2D
from keras_onebit.models.common import classifier_model

WIDTHS = (64, 128, 256, 512)
BN_EPSILON = 1e-5


def bireal_net(stages, classes=1000, binary=True, input_shape=(224, 224, 3), widths=WIDTHS,
               classifier_activation="softmax", weights=None, name=None):
    """Builds a Bi-Real Net with `stages[i]` single-conv blocks of width `widths[i]`.

    Args:
        stages: blocks per stage, (4, 4, 4, 4) for Bi-Real-18.
        classes: outputs of the final dense layer.
        binary: binary weights and activations (True) or the real-valued
            pre-training network (False).
        input_shape: (height, width, channels) of raw pixel input.
        widths: channels per stage.
        classifier_activation: "softmax", or None for the logits.
        weights: None, a hub model id or a path.
        name: model name.
    """
    if len(stages) != len(widths):
        raise ConfigError(f"{len(stages)} stages but {len(widths)} widths.")
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = _bn("input_bn")(inputs)
    x = layers.Conv2D(widths[0], 7, strides=2, padding="same", use_bias=False,
                      name="stem_conv")(x)
    x = _bn("stem_bn")(x)
    x = layers.MaxPooling2D(3, 2, padding="same", name="stem_pool")(x)
    for stage, (blocks, width) in enumerate(zip(stages, widths, strict=True)):
        for block in range(blocks):
            down = block == 0 and x.shape[-1] != width
            x = _block(x, width, down, f"stage{stage + 1}_block{block + 1}", binary)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dense(classes, name="fc")(x)
    name = name or f"bireal_{2 + sum(stages)}"
    return classifier_model(inputs, x, classifier_activation, name, weights)


def _bn(name):
    return layers.BatchNormalization(epsilon=BN_EPSILON, name=name)


def _block(x, width, down, prefix, binary):
    y = x if binary else layers.ReLU(name=f"{prefix}_relu")(x)
    y = BinaryConv2D(
        width, 3, strides=2 if down else 1, padding="same", binary=binary,
        scale="mean_abs", gradient="magnitude_aware",
        input_quantizer="approx_sign" if binary else None, name=f"{prefix}_conv",
    )(y)
    y = _bn(f"{prefix}_bn")(y)
    if down:
        x = layers.AveragePooling2D(2, 2, name=f"{prefix}_pool")(x)
        x = layers.Conv2D(width, 1, use_bias=False, name=f"{prefix}_proj")(x)
        x = _bn(f"{prefix}_proj_bn")(x)
    return layers.Add(name=f"{prefix}_add")([x, y])
