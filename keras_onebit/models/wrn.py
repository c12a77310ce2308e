"""Wide residual networks exactly as in McDonnell (ICLR 2018), CIFAR form.

WRN-D-k has D = 6n + 2 weight layers: a stem conv, three stages of n
pre-activation blocks (widths 16k, 32k, 64k) and a 1x1 conv head.

    input (raw pixels 0..255) -> BN (learned scale/offset) -> conv3x3 16k
    block: BN -> ReLU -> conv3x3 -> BN -> ReLU -> conv3x3, + shortcut
    down block shortcut: avg pool 3x3 / 2 "same", then zero channels
    head: BN -> ReLU -> conv1x1 (classes) -> BN -> global avg pool -> softmax

No biases, no dense layer; every BN but the input one has no scale/offset
(unless `learn_bn=True`, the ImageNet setting); BN epsilon 1e-5.
"""

import inspect

import keras
from keras import layers, ops

from keras_onebit import activation_storage
from keras_onebit.errors import ConfigError
from keras_onebit.layers import BinaryConv2D, ShiftedReLU, ZeroChannels
from keras_onebit.models.common import check_arguments, finish_model, model_input, pool_features
from keras_onebit.models.registry import register_model

BN_EPSILON = 1e-5
INPUT_SHAPE = (32, 32, 3)


def wrn(
    depth,
    width,
    classes=10,
    binary=True,
    input_shape=None,
    learn_bn=False,
    weight_decay=5e-4,
    classifier_activation="softmax",
    stem_relu=False,
    padding="same",
    batch_norm=True,
    temperature=40.0,
    switchable=False,
    input_storage=None,
    weights=None,
    name=None,
    *,
    include_top=True,
    input_tensor=None,
    pooling=None,
    scale="he",
    gradient="ste",
    input_quantizer=None,
):
    """Builds WRN-`depth`-`width` as a functional Keras model.

    The arguments `include_top`, `weights`, `input_tensor`, `input_shape`,
    `pooling`, `classes`, `classifier_activation` and `name` are those of
    `keras.applications` (e.g. `keras.applications.ResNet50`).

    Args:
        depth: weight layers, 6n + 2 (20 -> 3 blocks per stage); 6n + 4
            is read as Zagoruyko's count (16 -> 2 blocks per stage).
        width: widening factor k (stage widths 16k, 32k, 64k).
        classes: number of classes (the width of the 1x1 head conv); only
            used with `include_top=True`.
        binary: one-bit weights (True) or the float twin (False).
        input_shape: (height, width, channels) of raw pixel input; default
            (32, 32, 3), or the shape of `input_tensor`.
        learn_bn: learned scale/offset in every BN (ImageNet setting).
        weight_decay: decay on the latent conv weights (Keras L2 gets half).
        classifier_activation: "softmax", another activation, or None for
            the logits; ignored without the top.
        stem_relu: ReLU after the input BN (the authors' MATLAB code has one).
        padding: "same" (Keras/TF: a stride-2 conv or pool on an even size
            pads bottom/right only), or "symmetric" (MatConvNet, the MATLAB
            weights: a 1-pixel zero pad on every side, then "valid", for the
            stride-2 convs and the 3x3 shortcut pools).
        batch_norm: False gives the variant without batch norm (McDonnell
            et al., ACIRS 2019): only the input BN stays, every BN + ReLU
            becomes the shifted ReLU max(x, -1), and the logits are divided
            by `temperature` before global average pooling.
        temperature: logit divisor without BN (40 CIFAR-10, 25 CIFAR-100).
        switchable: every binary conv starts float and turns one-bit when
            switched (iterative layer binarization, see
            `keras_onebit.training.IterativeBinarization`).
        input_storage: what every conv keeps of its input for the backward
            pass: None (all of it) or "stochastic_1bit" (one random bit per
            element, McDonnell et al. 2017; see `keras_onebit.activation_storage`).
        weights: None (random initialization), a data set name ("cifar10":
            the hub weights of this factory trained on it, one-bit or float
            as `binary` says), a hub model id, or a path (hub entry folder,
            `.onebit` archive, the authors' `.mat` file). With
            `include_top=False` only the backbone's weights are loaded, also
            when `classes` differs from the weights'.
        name: model name; default "wrn_<depth>_<width>". Weights are found by
            the factory, whatever the name.
        include_top: True: the 1x1 classifier conv, its BN, global average
            pooling and `classifier_activation`. False: the backbone, ending
            with the last BN -> ReLU (before the 1x1 classifier conv).
        input_tensor: a Keras tensor (`keras.Input(...)` or a layer's
            output) to build the model on; the model's inputs are its
            source inputs (`keras.utils.get_source_inputs`).
        pooling: with `include_top=False`: None (the 4D feature map),
            "avg" or "max" (global pooling to a 2D tensor). Ignored with the
            top, as in Keras.
        scale: the one-bit weight scale of every conv: "he" (constant
            sqrt(2 / fan_in), the paper's), "mean_abs", "none" or a float.
        gradient: the weight gradient: "ste" (the paper's), "clipped" or
            "magnitude_aware".
        input_quantizer: None (real activations, the paper's), or the
            quantizer of the inputs of every block conv ("ste_sign",
            "approx_sign" or a `keras_onebit.quantizers.Quantizer`): a fully
            binary WRN, as larq's `ste_sign` input quantizer makes one. The
            ReLU before those convs is dropped (sign(ReLU(x)) would be +1
            everywhere): a block is BN -> conv(sign(.)) -> BN -> conv(sign(.)).
            The stem conv (pixels) and the 1x1 head conv keep real inputs.

    Returns:
        A functional `keras.Model`.

    Raises:
        ConfigError: a bad argument (depth, padding, pooling, classes,
            input_shape, input_tensor, weights), in one line.
        HubError: `weights` cannot be found or do not fit (for another
            architecture, or other classes with `include_top=True`).
    """
    blocks = blocks_per_stage(depth)
    if padding not in ("same", "symmetric"):
        raise ConfigError(f'padding must be "same" or "symmetric", got {padding!r}.')
    check_arguments(include_top, weights, input_shape, pooling, classes,
                    classifier_activation)
    conv = _conv_factory(binary, weight_decay, padding == "symmetric", switchable,
                         input_storage, scale, gradient)
    block_conv = _conv_factory(binary, weight_decay, padding == "symmetric", switchable,
                               input_storage, scale, gradient, input_quantizer)
    norm = learn_bn if batch_norm else None
    relu = layers.ReLU if input_storage is None else activation_storage.BitMaskReLU

    img_input = model_input(input_tensor, input_shape, INPUT_SHAPE)
    x = _bn("stem_bn", learn=True)(img_input)
    if stem_relu:
        x = layers.ReLU(name="stem_relu")(x)
    x = conv(16 * width, 3, 1, "stem_conv")(x)
    for stage in range(3):
        for block in range(blocks):
            down = stage > 0 and block == 0
            prefix = f"stage{stage + 1}_block{block + 1}"
            x = _block(x, 16 * width * 2**stage, down, prefix, block_conv, norm, padding,
                       relu if input_quantizer is None else None)
    x = _bn_relu(x, "head", norm, relu)
    if include_top:
        x = conv(classes, 1, 1, "head_conv")(x)
        if batch_norm:
            x = _bn("head_bn_out", learn=False)(x)
        else:
            x = layers.Rescaling(1.0 / temperature, name="head_temperature")(x)
        x = layers.GlobalAveragePooling2D(name="pool")(x)
    else:
        x = pool_features(x, pooling)
    factory = f"wrn_{depth}_{width}"
    return finish_model(img_input, input_tensor, x, name or factory, include_top=include_top,
                        classifier_activation=classifier_activation, weights=weights,
                        factory=factory, classes=classes)


def blocks_per_stage(depth):
    """n for WRN-depth: depth = 6n + 2 (McDonnell's count), or 6n + 4
    (Zagoruyko's count, which includes two 1x1 projection shortcuts that this
    form replaces by pool + zero channels; so WRN-16-4 has n = 2)."""
    for extra in (2, 4):
        if depth >= 6 + extra and (depth - extra) % 6 == 0:
            return (depth - extra) // 6
    raise ConfigError(f"WRN depth must be 6n + 2 or 6n + 4 with n >= 1, got {depth}.")


def _block(x, filters, down, prefix, conv, norm, padding="same", relu=layers.ReLU):
    stride = 2 if down else 1
    y = _bn_relu(x, f"{prefix}_1", norm, relu)
    y = conv(filters, 3, stride, f"{prefix}_conv1")(y)
    y = _bn_relu(y, f"{prefix}_2", norm, relu)
    y = conv(filters, 3, 1, f"{prefix}_conv2")(y)
    if down and padding == "symmetric":
        x = SymmetricAveragePooling2D(3, 2, name=f"{prefix}_pool")(x)
    elif down:
        x = layers.AveragePooling2D(3, 2, padding="same", name=f"{prefix}_pool")(x)
    if down:
        x = ZeroChannels(filters, name=f"{prefix}_zeros")(x)
    return layers.Add(name=f"{prefix}_add")([x, y])


def _bn(name, learn):
    return layers.BatchNormalization(
        epsilon=BN_EPSILON, center=learn, scale=learn, name=name
    )


def _bn_relu(x, prefix, norm, relu=layers.ReLU):
    """BN (learned scale/offset if `norm` is True) -> `relu`; with `norm`
    None (no batch norm) the shifted ReLU max(x, -1) instead. `relu` None:
    no activation (the next conv binarizes its input)."""
    if norm is None:
        return x if relu is None else ShiftedReLU(name=f"{prefix}_srelu")(x)
    x = _bn(f"{prefix}_bn", norm)(x)
    return x if relu is None else relu(name=f"{prefix}_relu")(x)


def _conv_factory(binary, weight_decay, symmetric=False, switchable=False, input_storage=None,
                  scale="he", gradient="ste", input_quantizer=None):
    regularizer = keras.regularizers.L2(weight_decay / 2) if weight_decay else None

    def conv(filters, kernel_size, stride, name):
        layer = BinaryConv2D(
            filters,
            kernel_size,
            strides=stride,
            padding="valid" if symmetric and stride > 1 else "same",
            binary=binary,
            scale=scale,
            gradient=gradient,
            switchable=switchable,
            input_storage=input_storage,
            input_quantizer=input_quantizer,
            kernel_regularizer=regularizer,
            name=name,
        )
        if not (symmetric and stride > 1):
            return layer
        pad = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")
        return lambda x: layer(pad(x))

    return conv


@keras.saving.register_keras_serializable(package="keras_onebit")
class SymmetricAveragePooling2D(layers.Layer):
    """MatConvNet's average pool: pad pool_size // 2 on every side, then
    "valid"; padded cells are not counted in the mean (unlike a ZeroPadding2D
    + AveragePooling2D pair). The MATLAB WRN weights need it: on a 32x32 map
    the 3x3/2 windows start at row -1, where Keras "same" starts at row 0."""

    def __init__(self, pool_size=3, strides=2, **kwargs):
        super().__init__(**kwargs)
        self.pool_size, self.strides = int(pool_size), int(strides)

    def call(self, inputs):
        p = self.pool_size // 2
        pad = [[0, 0], [p, p], [p, p], [0, 0]]

        def pool(t):
            return ops.average_pool(ops.pad(t, pad), self.pool_size, self.strides, "valid")

        return pool(inputs) / pool(ops.ones_like(inputs[..., :1]))

    def compute_output_shape(self, input_shape):
        p, k, s = self.pool_size // 2, self.pool_size, self.strides
        size = [None if d is None else (d + 2 * p - k) // s + 1 for d in input_shape[1:3]]
        return (input_shape[0], *size, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides}


# ------------------------------------------------------------------ named factories

_NAMED_DOC = """WRN-{depth}-{width} (McDonnell, ICLR 2018){extra}.

    Builds `wrn({depth}, {width}, ...)`; registered as "wrn_{depth}_{width}" (see
    `keras_onebit.models.get`). `weights="cifar10"` loads the hub weights of
    this factory trained on CIFAR-10, one-bit or float as `binary` says
    (`keras_onebit.hub.list_entries()` shows which exist), whatever `name` is.

    Args:
        classes: number of classes of the top (default 10).
        binary: one-bit weights (True) or the float twin (False).
        input_shape: (height, width, channels); default (32, 32, 3) or the
            shape of `input_tensor`.
        include_top: False returns the backbone (up to the last BN -> ReLU).
        weights: None, a data set name, a hub model id or a path.
        input_tensor: a Keras tensor to build the model on.
        pooling: None, "avg" or "max" (with `include_top=False`).
        classifier_activation: "softmax" or None for the logits.
        name: model name; default "wrn_{depth}_{width}".
        scale, gradient, learn_bn, weight_decay, batch_norm, temperature,
            switchable, input_storage, stem_relu, padding, input_quantizer: as
            `wrn`.

    Returns:
        A functional `keras.Model`.

    Raises:
        ConfigError: a bad argument, in one line.
        HubError: `weights` cannot be found or do not fit the model.
    """


def _signature(classes=10, binary=True, input_shape=None, *, include_top=True, weights=None,
               input_tensor=None, pooling=None, classifier_activation="softmax", name=None,
               scale="he", gradient="ste", learn_bn=False, weight_decay=5e-4, batch_norm=True,
               temperature=40.0, switchable=False, input_storage=None, stem_relu=False,
               padding="same", input_quantizer=None):
    """The one parameter list of every named WRN factory (never called)."""


SIGNATURE = inspect.signature(_signature)


def _named(depth, width, extra=""):
    """The registered factory `wrn_<depth>_<width>`: `wrn(depth, width, ...)` with
    the explicit parameters of `SIGNATURE` (what help() and IDEs show, through
    `__signature__`) and its own docstring, written once for all of them."""

    def factory(*args, **kwargs):
        try:
            bound = SIGNATURE.bind(*args, **kwargs)
        except TypeError as e:  # as Python's own call would: named, a TypeError
            raise TypeError(f"wrn_{depth}_{width}(): {e}") from None
        bound.apply_defaults()
        return wrn(depth, width, **bound.arguments)

    factory.__name__ = factory.__qualname__ = f"wrn_{depth}_{width}"
    factory.__signature__ = SIGNATURE
    factory.__doc__ = _NAMED_DOC.format(depth=depth, width=width, extra=extra)
    return register_model(factory)


wrn_16_4 = _named(16, 4, ": n = 2 blocks per stage, 14 convs")
wrn_20_1 = _named(20, 1)
wrn_20_2 = _named(20, 2)
wrn_20_4 = _named(20, 4)
wrn_20_10 = _named(20, 10, ": 26,737,120 one-bit conv weights on CIFAR-10")
wrn_20_20 = _named(20, 20)
wrn_26_10 = _named(26, 10)
