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
`binary=False` gives the real-valued networks of the paper's pre-training
stages: float weights and `activation` "relu", "leaky_clip" or "clip" in
place of sign (`keras_onebit.training.bireal` runs the stages, initialises
the binary net from the real one and retrains only BN at the end).

Differences from larq-zoo's BiRealNet, on purpose: latent weights start
He-normal (larq-zoo: glorot-normal; SPEC §1 uses He for every model here);
BN momentum 0.99 and epsilon 1e-5 (larq-zoo: 0.8 and 1e-3; Keras' and the
paper code's defaults); a learned input BN on raw pixels (the convention of
this library: models take 0..255). As in larq-zoo, the binary convs' latent
weights are clipped to +-1 (`latent_clip`): under the magnitude-aware
gradient a weight past +-1 gets zero gradient for ever otherwise.
"""

import itertools

import keras
from keras import layers

from keras_onebit.activations import REAL_STAGES
from keras_onebit.constraints import WeightClip
from keras_onebit.errors import ConfigError
from keras_onebit.layers import BinaryConv2D
from keras_onebit.models.common import check_arguments, finish_model, model_input, pool_features
from keras_onebit.models.registry import register_model

WIDTHS = (64, 128, 256, 512)
BN_EPSILON = 1e-5
INPUT_SHAPE = (224, 224, 3)
NAMED = {(4, 4, 4, 4): "bireal_18", (6, 8, 12, 6): "bireal_34"}
STEMS = {"imagenet": (7, 2), "cifar": (3, 1)}  # stem conv size and stride
SHORTCUTS = ("conv", "repeat")
CIFAR_WIDTHS = (16, 32, 64)  # ResNet-20's; bireal_20_2 doubles them


def bireal_net(stages, classes=1000, binary=True, input_shape=None, widths=WIDTHS,
               classifier_activation="softmax", weights=None, name=None, *, include_top=True,
               input_tensor=None, pooling=None, scale="mean_abs", gradient="magnitude_aware",
               activation=None, weight_decay=0.0, latent_clip=None, stem="imagenet",
               shortcut="conv"):
    """Builds a Bi-Real Net with `stages[i]` single-conv blocks of width `widths[i]`.

    The arguments `include_top`, `weights`, `input_tensor`, `input_shape`,
    `pooling`, `classes`, `classifier_activation` and `name` are those of
    `keras.applications` (e.g. `keras.applications.ResNet50`).

    Args:
        stages: blocks per stage, (4, 4, 4, 4) for Bi-Real-18.
        classes: outputs of the final dense layer (with `include_top`).
        binary: binary weights and activations (True) or the real-valued
            pre-training network (False).
        input_shape: (height, width, channels) of raw pixel input; default
            (224, 224, 3), or the shape of `input_tensor`.
        widths: channels per stage.
        classifier_activation: "softmax", another activation, or None for
            the logits; ignored without the top.
        weights: None, a data set name (the hub weights of this factory
            trained on it), a hub model id, or a path. With
            `include_top=False` only the backbone's weights are loaded.
        name: model name; default "bireal_<depth>". Weights are found by the
            factory ("bireal_18" for stages (4, 4, 4, 4) and the default
            widths), whatever the name.
        include_top: True: global average pooling, the real dense layer
            and `classifier_activation`. False: the backbone, ending with the
            last block's output (before the global pooling and the dense).
        input_tensor: a Keras tensor (`keras.Input(...)` or a layer's
            output) to build the model on; the model's inputs are its
            source inputs (`keras.utils.get_source_inputs`).
        pooling: with `include_top=False`: None (the 4D feature map), "avg"
            (the features the dense layer would see) or "max". Ignored with
            the top, as in Keras.
        scale: the one-bit weight scale of the binary convs: "mean_abs" (per
            output channel, the paper's), "he", "none" or a float.
        gradient: the weight gradient: "magnitude_aware" (the paper's),
            "ste" or "clipped".
        activation: of the real-valued net (`binary=False`): "relu"
            (default, the first pre-training stage), "leaky_clip" or "clip"
            (the later stages); the binary net uses sign (None or "sign").
        weight_decay: L2 decay on the 3x3 conv weights (Keras L2 gets
            half); 0 as in the paper's binary training.
        latent_clip: clip the binary convs' latent weights to
            +-`latent_clip`; default 1.0 with the clipped or magnitude-aware
            gradient (which give no gradient past +-1), else none.
        stem: "imagenet" (the paper's 7x7/2 conv, BN and 3x3/2 max pool) or
            "cifar" (a 3x3/1 conv and BN, no pooling: the CIFAR ResNets'
            stem, as in the Bi-Real-20 of RBNN and IR-Net).
        shortcut: of a block that halves the size, after a 2x2/2 average
            pool: "conv" (a real 1x1 conv + BN, the paper's) or "repeat"
            (the pooled channels repeated to the new width, no weights; the
            width must be a multiple of the old one: the parameter-free
            shortcut of the CIFAR ResNets, which pad with zeros instead).

    Returns:
        A functional `keras.Model`.

    Raises:
        ConfigError: a bad argument (stages vs widths, pooling, classes,
            input_shape, input_tensor, weights, stem), in one line.
        HubError: `weights` cannot be found or do not fit the model.
    """
    if len(stages) != len(widths):
        raise ConfigError(f"{len(stages)} stages but {len(widths)} widths.")
    conv_options = _conv_options(binary, activation, gradient, weight_decay, latent_clip)
    check_arguments(include_top, weights, input_shape, pooling, classes,
                    classifier_activation)
    img_input = model_input(input_tensor, input_shape, INPUT_SHAPE)
    _check_input_size(img_input.shape[1:3], stem, len(stages))
    x = _bn("input_bn")(img_input)
    if shortcut not in SHORTCUTS:
        raise ConfigError(f"shortcut must be one of {list(SHORTCUTS)}, got {shortcut!r}.")
    if shortcut == "repeat" and any(b % a for a, b in itertools.pairwise(widths)):
        raise ConfigError(f'shortcut="repeat" needs each width a multiple of the one before, '
                          f"got widths {tuple(widths)}.")
    x = _stem(x, widths[0], stem)
    for stage, (blocks, width) in enumerate(zip(stages, widths, strict=True)):
        for block in range(blocks):
            down = block == 0 and x.shape[-1] != width
            x = _block(x, width, down, f"stage{stage + 1}_block{block + 1}", binary, scale,
                       gradient, activation or "relu", conv_options, shortcut)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="pool")(x)
        x = layers.Dense(classes, name="fc")(x)
    else:
        x = pool_features(x, pooling)
    factory = _factory_name(stages, widths, stem, shortcut)
    return finish_model(img_input, input_tensor, x, name or f"bireal_{2 + sum(stages)}",
                        include_top=include_top, classifier_activation=classifier_activation,
                        weights=weights, factory=factory, classes=classes)


_NAMED_DOC = """Bi-Real-{depth} (Liu et al., ECCV 2018): {what}.

    Builds `bireal_net({stages})`; registered as "bireal_{depth}".

    Args:
        classes: outputs of the dense layer (default 1000, ImageNet).
        binary: binary weights and activations (True) or the real-valued
            pre-training network (False).
        input_shape: (height, width, channels); default (224, 224, 3) or
            the shape of `input_tensor`.
        include_top: False returns the backbone (before the global pooling
            and the dense layer).
        weights: None, a data set name, a hub model id or a path.
        input_tensor: a Keras tensor to build the model on.
        pooling: None, "avg" or "max" (with `include_top=False`).
        classifier_activation: "softmax" or None for the logits.
        name: model name; default "bireal_{depth}".
        widths, scale, gradient, activation, weight_decay, latent_clip: as
            `bireal_net`.

    Returns:
        A functional `keras.Model`.

    Raises:
        ConfigError: a bad argument, in one line.
        HubError: `weights` cannot be found or do not fit the model.
    """


def _named(stages, what):
    def decorate(factory):
        factory.__doc__ = _NAMED_DOC.format(depth=2 + sum(stages), what=what, stages=stages)
        return register_model(factory)

    return decorate


# The named factories spell out their arguments (what help() and IDEs show) and
# pass exactly their own arguments on: `locals()` holds nothing else at that point.


@_named((4, 4, 4, 4), "16 binary 3x3 convs, 10,985,472 binary weights")
def bireal_18(classes=1000, binary=True, input_shape=None, *, include_top=True, weights=None,
              input_tensor=None, pooling=None, classifier_activation="softmax", name=None,
              widths=WIDTHS, scale="mean_abs", gradient="magnitude_aware", activation=None,
              weight_decay=0.0, latent_clip=None):
    return bireal_net((4, 4, 4, 4), **locals())


@_named((6, 8, 12, 6), "32 binary 3x3 convs")
def bireal_34(classes=1000, binary=True, input_shape=None, *, include_top=True, weights=None,
              input_tensor=None, pooling=None, classifier_activation="softmax", name=None,
              widths=WIDTHS, scale="mean_abs", gradient="magnitude_aware", activation=None,
              weight_decay=0.0, latent_clip=None):
    return bireal_net((6, 8, 12, 6), **locals())


def _factory_name(stages, widths, stem, shortcut):
    """The named factory these arguments build (its hub weights), else "bireal_net"."""
    if stem == "cifar":
        named = (tuple(stages) == (6, 6, 6) and shortcut == "repeat"
                 and tuple(widths) == tuple(2 * w for w in CIFAR_WIDTHS))
        return "bireal_20_2" if named else "bireal_net"
    return NAMED.get(tuple(stages), "bireal_net") if tuple(widths) == WIDTHS else "bireal_net"


def _check_input_size(size, stem, stages):
    """Refuses images too small for every stage to halve them (one line)."""
    if stem not in STEMS:
        raise ConfigError(f"stem must be one of {sorted(STEMS)}, got {stem!r}.")
    reduction = STEMS[stem][1] * (2 if stem == "imagenet" else 1) * 2 ** (stages - 1)
    if any(d is not None and d < reduction for d in size):
        raise ConfigError(f"input_shape of {tuple(size)} pixels is too small for this "
                          f"Bi-Real Net: its stem and {stages} stages reduce the image "
                          f"{reduction}x; give at least {reduction}x{reduction} pixels.")


def _stem(x, width, stem):
    if stem not in STEMS:
        raise ConfigError(f"stem must be one of {sorted(STEMS)}, got {stem!r}.")
    size, strides = STEMS[stem]
    x = layers.Conv2D(width, size, strides=strides, padding="same", use_bias=False,
                      name="stem_conv")(x)
    x = _bn("stem_bn")(x)
    if stem == "imagenet":
        x = layers.MaxPooling2D(3, 2, padding="same", name="stem_pool")(x)
    return x


@register_model
def bireal_20_2(classes=10, binary=True, input_shape=(32, 32, 3), *, include_top=True,
                weights=None, input_tensor=None, pooling=None, classifier_activation="softmax",
                name="bireal_20_2", scale="mean_abs", gradient="magnitude_aware",
                activation=None, weight_decay=0.0, latent_clip=None):
    """Bi-Real-20 at twice ResNet-20's width, for CIFAR-sized images.

    Builds `bireal_net((6, 6, 6), widths=(32, 64, 128), stem="cifar")`: a
    3x3 stem conv (real), 18 binary 3x3 convs, each with a real shortcut
    (the Bi-Real-20 of RBNN and IR-Net, whose ResNet-20 has widths 16, 32,
    64); where the size halves, the shortcut is the average-pooled input
    repeated to the doubled width (no weights, `shortcut="repeat"`); the
    dense layer is real. 1,069,056 binary weights (about 134 kB at one bit).

    Args:
        classes: outputs of the dense layer (default 10, CIFAR-10).
        binary: binary weights and activations (True) or the real-valued
            net (False; `activation` "relu" by default).
        input_shape: (height, width, channels); default (32, 32, 3).
        include_top: False returns the backbone (before the global pooling
            and the dense layer).
        weights: None, a data set name, a hub model id or a path.
        input_tensor: a Keras tensor to build the model on.
        pooling: None, "avg" or "max" (with `include_top=False`).
        classifier_activation: "softmax" or None for the logits.
        name: model name.
        scale, gradient, activation, weight_decay, latent_clip: as
            `bireal_net`.

    Returns:
        A functional `keras.Model`.

    Raises:
        ConfigError: a bad argument, in one line.
        HubError: `weights` cannot be found or do not fit the model.
    """
    return bireal_net((6, 6, 6), widths=tuple(2 * w for w in CIFAR_WIDTHS), stem="cifar",
                      shortcut="repeat", **locals())


def _bn(name):
    return layers.BatchNormalization(epsilon=BN_EPSILON, name=name)


def _conv_options(binary, activation, gradient, weight_decay, latent_clip):
    """The 3x3 convs' regularizer and constraint, after checking `activation`."""
    if binary and activation not in (None, "sign"):
        raise ConfigError(f"activation={activation!r} is for the real-valued net "
                          "(binary=False); the binary net uses sign.")
    if not binary and activation is not None and activation not in REAL_STAGES:
        raise ConfigError(f"Unknown activation {activation!r}: expected one of "
                          f"{sorted(REAL_STAGES)} (binary=False).")
    if latent_clip is None and binary and gradient in ("clipped", "magnitude_aware"):
        latent_clip = 1.0
    return {
        "kernel_regularizer": keras.regularizers.L2(weight_decay / 2) if weight_decay else None,
        "kernel_constraint": WeightClip(latent_clip) if latent_clip else None,
    }


def _block(x, width, down, prefix, binary, scale="mean_abs", gradient="magnitude_aware",
           activation="relu", conv_options=None, shortcut="conv"):
    if binary:
        y = x
    elif activation == "relu":
        y = layers.ReLU(name=f"{prefix}_relu")(x)
    else:
        y = layers.Activation(REAL_STAGES[activation], name=f"{prefix}_{activation}")(x)
    y = BinaryConv2D(
        width, 3, strides=2 if down else 1, padding="same", binary=binary,
        scale=scale, gradient=gradient,
        input_quantizer="approx_sign" if binary else None, name=f"{prefix}_conv",
        **(conv_options or {}),
    )(y)
    y = _bn(f"{prefix}_bn")(y)
    if down:
        x = _down_shortcut(x, width, prefix, shortcut)
    return layers.Add(name=f"{prefix}_add")([x, y])


def _down_shortcut(x, width, prefix, shortcut):
    """The shortcut of a block that halves the size: average pool 2x2/2, then
    a real 1x1 conv + BN ("conv", the paper's), or the pooled channels twice
    ("repeat": no weights, for a width that doubles)."""
    x = layers.AveragePooling2D(2, 2, name=f"{prefix}_pool")(x)
    if shortcut == "repeat":
        return layers.Concatenate(name=f"{prefix}_repeat")([x] * (width // x.shape[-1]))
    x = layers.Conv2D(width, 1, use_bias=False, name=f"{prefix}_proj")(x)
    return _bn(f"{prefix}_proj_bn")(x)
