"""One-bit Keras layers: `BinaryConv2D` and `BinaryDense`.

Each keeps a latent float kernel (what the optimizer updates) and uses
`kernel_quantizer(kernel)` in the forward pass, `alpha * sign(W)` by default.
`binary=False` makes the same layer an ordinary float layer, so the float
twin of a model is one argument away. Defaults follow McDonnell (ICLR 2018):
He-normal latent weights and no bias.

`switchable=True` gives iterative layer binarization (Lan, arXiv
2111.07046): the layer starts float and turns one-bit when `set_binary(True)`
is called. The switch is a non-trainable boolean weight (`binary_on`), so it
flips inside a compiled training step without retracing and without touching
the optimizer state, and it is saved with the model.
"""

import keras
import numpy as np
from keras import ops

from keras_onebit import activation_storage, layer_walk, quantizers
from keras_onebit.errors import ConfigError

ONEBIT_ARGS = ("binary", "scale", "gradient", "kernel_quantizer", "input_quantizer",
               "switchable", "input_storage")


def pop_onebit_args(kwargs):
    """Takes the one-bit arguments (`ONEBIT_ARGS`) out of a layer's kwargs."""
    return {name: kwargs.pop(name) for name in ONEBIT_ARGS if name in kwargs}


def make_kernel_quantizer(binary, scale, gradient, kernel_quantizer):
    """The layer's kernel quantizer: `kernel_quantizer` (an object, a name or
    a config) if given, else `SignWeight(scale, gradient)` when `binary`."""
    quantizer = quantizers.get_kernel_quantizer(kernel_quantizer)
    if quantizer is not None and not binary:
        raise ConfigError(f"binary=False with kernel_quantizer={kernel_quantizer!r}: a float "
                          "layer has no kernel quantizer; drop one of the two.")
    if quantizer is None and binary:
        quantizer = quantizers.SignWeight(scale, gradient)
    return quantizer


class OneBitKernelMixin:
    """What the binary layers share: quantizers, deploy view, config."""

    def _init_onebit(self, binary=True, scale="he", gradient="ste", kernel_quantizer=None,
                     input_quantizer=None, switchable=False, input_storage=None):
        quantizers.check_options(scale, gradient)
        if switchable and not binary:
            raise ConfigError("switchable=True needs binary=True: the switch turns the "
                              "layer from float to one-bit.")
        self.kernel_quantizer = make_kernel_quantizer(binary, scale, gradient, kernel_quantizer)
        self.binary = self.kernel_quantizer is not None
        self.switchable = bool(switchable)
        self.binary_on = None
        self.scale = getattr(self.kernel_quantizer, "scale", scale)
        self.gradient = getattr(self.kernel_quantizer, "gradient", gradient)
        self.input_quantizer = quantizers.get(input_quantizer)
        self.input_storage = activation_storage.get(input_storage)
        if self.input_storage is not None:  # refused here, in one line, not inside call()
            activation_storage.check_backend("Stochastic one-bit input storage")
        # The random state of stochastic storage belongs to the layer (a tracked
        # SeedGenerator: seeded draws inside a compiled JAX step; not a weight).
        self.storage_seed = (None if self.input_storage is None
                             else keras.random.SeedGenerator(name="storage_seed"))

    @property
    def precision(self):
        """Bits per stored weight: the kernel quantizer's (1), or 32 for a float layer."""
        return getattr(self.kernel_quantizer, "precision", 32) if self.binary else 32

    def build(self, input_shape):
        super().build(input_shape)
        if self.switchable:
            self.binary_on = self.add_weight(
                name="binary_on", shape=(), dtype="bool", initializer="zeros",
                trainable=False)

    def save_own_variables(self, store):
        super().save_own_variables(store)  # Keras stores kernel and bias only
        if self.binary_on is not None:
            store["binary_on"] = self.binary_on

    def load_own_variables(self, store):
        super().load_own_variables(store)
        if self.binary_on is not None:
            self.binary_on.assign(store["binary_on"])

    def set_binary(self, on=True):
        """Switches a `switchable` layer to one-bit weights (or back)."""
        if not self.switchable:
            raise ConfigError(f"Layer {self.name!r} is not switchable (switchable=False).")
        if self.binary_on is None:
            raise ConfigError(f"Layer {self.name!r} is not built yet.")
        self.binary_on.assign(bool(on))

    def binary_is_on(self):
        """True when the forward pass uses one-bit weights now."""
        if not self.binary:
            return False
        if not self.switchable:
            return True
        return self.binary_on is not None and bool(ops.convert_to_numpy(self.binary_on))

    def forward_kernel(self, kernel=None):
        """The kernel the forward pass uses (+-alpha when binary)."""
        kernel = self.kernel if kernel is None else kernel
        if self.kernel_quantizer is None:
            return kernel
        quantized = self.kernel_quantizer(kernel)
        if self.binary_on is None:
            return quantized
        return ops.where(ops.convert_to_tensor(self.binary_on), quantized,
                         ops.convert_to_tensor(kernel))

    def extra_weights(self):
        """The layer's weights other than the kernel and the switch (bias)."""
        return [w for w in self.weights if w is not self.kernel and w is not self.binary_on]

    def quantize_input(self, inputs):
        if self.input_quantizer is None:
            return inputs
        return self.input_quantizer(inputs)

    def linear(self, op, inputs, kernel, training=None):
        """op(quantized inputs, forward kernel); in training, the input kept
        for the backward pass is what `input_storage` says (all of it by default)."""
        inputs, kernel = self.quantize_input(inputs), self.forward_kernel(kernel)
        if self.input_storage is None or not training:
            return op(inputs, kernel)
        return self.input_storage.apply(op, inputs, kernel, seed=self.storage_seed)

    def check_packable(self):
        """Raises `ConfigError` unless the kernel is stored as sign bits and a
        scale, i.e. its quantizer is a `SignWeight` (or a subclass)."""
        if not isinstance(self.kernel_quantizer, quantizers.SignWeight):
            raise ConfigError(
                f"Layer {self.name!r} uses kernel quantizer "
                f"{type(self.kernel_quantizer).__name__}, which is not a SignWeight: its "
                "kernel cannot be stored as sign bits and a scale (subclass "
                "keras_onebit.quantizers.SignWeight to export it).")

    def add_bias_and_activate(self, x):
        """x + bias (broadcast over the channel axis), then the activation."""
        if self.bias is not None:
            bias = self.bias
            if getattr(self, "data_format", "channels_last") == "channels_first":
                bias = ops.reshape(bias, (1, -1) + (1,) * (len(x.shape) - 2))
            x = ops.add(x, bias)
        return x if self.activation is None else self.activation(x)

    def sign_bits(self):
        """Boolean array, True where the latent weight is >= 0 (bit 1 = +1)."""
        self.check_packable()
        return ops.convert_to_numpy(self.kernel) >= 0

    def stored_kernel_error(self):
        """Largest |difference| between the forward kernel and alpha * sign(W),
        what sign bits and a scale store (0.0 for every built-in quantizer; a
        subclass with its own forward computation may differ)."""
        signs = np.where(self.sign_bits(), np.float32(1), np.float32(-1))
        stored = signs * self.kernel_alpha()
        used = np.asarray(ops.convert_to_numpy(self.forward_kernel()), np.float32)
        return float(np.max(np.abs(used - stored))) if used.size else 0.0

    def kernel_alpha(self):
        """float32 scale: shape () per layer or (C_out,) per channel."""
        self.check_packable()
        alpha = self.kernel_quantizer.alpha(self.kernel)
        return np.asarray(ops.convert_to_numpy(alpha), dtype=np.float32)

    def _onebit_config(self):
        return {
            "binary": self.binary,
            "scale": self.scale,
            "gradient": self.gradient,
            "kernel_quantizer": quantizers.serialize(self.kernel_quantizer),
            "input_quantizer": quantizers.serialize(self.input_quantizer),
            "switchable": self.switchable,
            "input_storage": quantizers.serialize(self.input_storage),
        }


@keras.saving.register_keras_serializable(package="keras_onebit")
class BinaryConv2D(OneBitKernelMixin, keras.layers.Conv2D):
    """2D convolution with one-bit weights.

    Args:
        filters, kernel_size, strides, padding, ...: as `keras.layers.Conv2D`;
            the one-bit arguments below are keyword arguments.
        binary: if False the layer is a plain float Conv2D.
        scale: `"he"` (constant sqrt(2 / fan_in), default), `"mean_abs"`
            (per output channel), `"none"`, or a float. See `SignWeight`.
        gradient: `"ste"` (default), `"clipped"` or `"magnitude_aware"`.
        kernel_quantizer: a `keras_onebit.quantizers.Quantizer`, its config,
            or a name ("sign_weight", "ste_sign", "magnitude_aware_sign");
            overrides `scale` and `gradient`, which are shorthands for
            `SignWeight(scale, gradient)`.
        input_quantizer: None (real activations, default), `"approx_sign"`
            (Bi-Real Net), `"ste_sign"`, or a quantizer instance.
        switchable: start float, turn one-bit on `set_binary(True)`
            (iterative binarization; see `training.IterativeBinarization`).
        input_storage: None (the backward pass keeps the input as it is) or
            `"stochastic_1bit"` / a `StochasticBinaryStorage` (one random
            bit per element; McDonnell et al. 2017).

    Raises:
        ConfigError: an unknown scale, gradient or quantizer name;
            `kernel_quantizer` with `binary=False`; `switchable=True` with
            `binary=False`; an unknown `input_storage`.
    """

    def __init__(self, filters, kernel_size, use_bias=False, kernel_initializer="he_normal",
                 **kwargs):
        onebit = pop_onebit_args(kwargs)
        super().__init__(filters, kernel_size, use_bias=use_bias,
                         kernel_initializer=kernel_initializer, **kwargs)
        self._init_onebit(**onebit)

    def call(self, inputs, training=None):
        x = self.linear(self.convolution_op, inputs, self.kernel, training)
        return self.add_bias_and_activate(x)

    def get_config(self):
        return {**super().get_config(), **self._onebit_config()}


@keras.saving.register_keras_serializable(package="keras_onebit")
class BinaryDense(OneBitKernelMixin, keras.layers.Dense):
    """Densely connected layer with one-bit weights.

    Args:
        units, activation, use_bias, kernel_initializer, ...: as
            `keras.layers.Dense` (defaults here: no bias, He-normal latent
            kernel); the one-bit arguments below are keyword arguments.
        binary: if False the layer is a plain float Dense.
        scale: `"he"` (default), `"mean_abs"`, `"none"`, or a float; as in
            `BinaryConv2D`.
        gradient: `"ste"` (default), `"clipped"` or `"magnitude_aware"`.
        kernel_quantizer: a `Quantizer`, its config or a name; overrides
            `scale` and `gradient`.
        input_quantizer: None (default), `"approx_sign"`, `"ste_sign"` or a
            quantizer instance.
        switchable: start float, turn one-bit on `set_binary(True)`.
        input_storage: None or `"stochastic_1bit"` / a
            `StochasticBinaryStorage`.

    Raises:
        ConfigError: as `BinaryConv2D`.
    """

    def __init__(self, units, use_bias=False, kernel_initializer="he_normal", **kwargs):
        onebit = pop_onebit_args(kwargs)
        super().__init__(units, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         **kwargs)
        self._init_onebit(**onebit)

    def call(self, inputs, training=None):
        x = self.linear(ops.matmul, inputs, self.kernel, training)
        return self.add_bias_and_activate(x)

    def get_config(self):
        return {**super().get_config(), **self._onebit_config()}


@keras.saving.register_keras_serializable(package="keras_onebit")
class ZeroChannels(keras.layers.Layer):
    """Appends zero channels up to `channels` (the WRN down-block shortcut).

    Real channels come first, then zeros: `concatenate([x, zeros])`.

    Args:
        channels: the number of channels of the output; at least the
            input's (calling the layer on more channels raises
            `ConfigError`).
        **kwargs: as `keras.layers.Layer` (name, dtype, ...).
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)

    def call(self, inputs):
        extra = self.channels - inputs.shape[-1]
        if extra < 0:
            raise ConfigError(
                f"ZeroChannels({self.channels}) got {inputs.shape[-1]} channels."
            )
        pad = [[0, 0]] * (len(inputs.shape) - 1) + [[0, extra]]
        return ops.pad(inputs, pad)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.channels,)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@keras.saving.register_keras_serializable(package="keras_onebit")
class ShiftedReLU(keras.layers.Layer):
    """max(x, -1): the ReLU of the WRN variant without batch norm. In
    training its backward pass keeps the one-bit mask x >= -1 instead of the
    float input (the same gradient, tf.maximum's).

    Args:
        **kwargs: as `keras.layers.Layer` (name, dtype, ...).
    """

    def call(self, inputs, training=None):
        if training:
            return activation_storage.relu_keeping_a_bit_mask(inputs, floor=-1.0)
        return ops.maximum(inputs, -1.0)


BINARY_LAYERS = (BinaryConv2D, BinaryDense)


def is_binary(layer):
    """True for a layer whose kernel is one bit per weight now (a switchable
    layer counts once it is switched on).

    Args:
        layer: any Keras layer.

    Returns:
        True for a `BinaryConv2D` / `BinaryDense` whose one-bit kernel is on,
        False otherwise (float layers, `binary=False`, a switchable layer not
        yet switched).
    """
    return isinstance(layer, BINARY_LAYERS) and layer.binary_is_on()


def binary_kernels(model, switched_off_too=False):
    """{id(kernel): layer} for every one-bit layer of `model`.

    Args:
        model: a Keras model (nested models and layers are walked).
        switched_off_too: also the switchable layers not switched on yet.

    Returns:
        A dict from `id(layer.kernel)` to the layer.
    """
    return {id(layer.kernel): layer for layer in layer_walk.all_layers(model)
            if is_binary(layer) or (switched_off_too and getattr(layer, "switchable", False))}
