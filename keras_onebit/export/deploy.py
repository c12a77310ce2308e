"""The deploy clone: the same network with constant one-bit kernels.

Converting the training model would keep the latent float kernels and the
per-inference sign ops (SPEC §6), so every exporter converts this clone:
each binary layer becomes a plain `Conv2D` / `Dense` holding its forward
kernel `alpha * sign(W)`, every other layer is copied with its weights.

Modes:
- "float": plain kernels (float, int8 and micro exports).
- "int4": binary kernels pass through `fake_quant` (4 bits, narrow range,
  per output channel, range +-alpha) so the converter stores them as exact
  +-7 int4 values.
The packed formats are made from the float and int8 conversions of this
clone (bitpack.py), so this module knows nothing of them.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_onebit.export.errors import ExportError
from keras_onebit.layer_walk import all_layers
from keras_onebit.layers import BINARY_LAYERS, ONEBIT_ARGS, is_binary
from keras_onebit.quantizers import ApproxSign, SteSign, sign

MODES = ("float", "int4")

# Layers whose inference graph is made of TFLite builtin ops.
SUPPORTED = {
    "InputLayer", "Conv2D", "DepthwiseConv2D", "Dense", "BatchNormalization", "ReLU",
    "LeakyReLU", "Activation", "Softmax", "Add", "Subtract", "Multiply", "Average", "Maximum",
    "Minimum", "Concatenate", "AveragePooling2D", "MaxPooling2D", "GlobalAveragePooling2D",
    "GlobalMaxPooling2D", "Flatten", "Reshape", "ZeroPadding2D", "Cropping2D", "Dropout",
    "SpatialDropout2D", "GaussianNoise", "Rescaling", "Identity", "ZeroChannels",
    "SymmetricAveragePooling2D", "ShiftedReLU", "BinaryConv2D", "BinaryDense", "BitMaskReLU",
}
SIGN_QUANTIZERS = (ApproxSign, SteSign)  # forward sign(x); they differ only in training
TRAINING_ONLY = {"Dropout", "SpatialDropout2D", "GaussianNoise"}


def check_supported(model):
    """Raises ExportError naming the first layer the exporters cannot convert."""
    for layer in all_layers(model):
        kind = type(layer).__name__
        if kind not in SUPPORTED:
            raise ExportError(
                f"Cannot export layer {layer.name!r} of type {kind}: supported layer types are "
                f"{', '.join(sorted(SUPPORTED))}."
            )
        quantizer = getattr(layer, "input_quantizer", None)
        if quantizer is not None and not isinstance(quantizer, SIGN_QUANTIZERS):
            raise ExportError(
                f"Cannot export layer {layer.name!r} of type {kind}: its input quantizer "
                f"{type(quantizer).__name__} is not one whose forward pass is sign(x) "
                f"({', '.join(q.__name__ for q in SIGN_QUANTIZERS)})."
            )


@keras.saving.register_keras_serializable(package="keras_onebit_deploy")
class SignInput(keras.layers.Layer):
    """Deploy form of a layer with binary activations (Bi-Real Net):
    inner(sign(x)) with sign(0) = +1, as builtin ops (GREATER_EQUAL, SELECT_V2)."""

    def __init__(self, inner, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner

    def build(self, input_shape):
        self.inner.build(input_shape)

    def call(self, inputs):
        return self.inner(sign(inputs))

    def compute_output_shape(self, input_shape):
        return self.inner.compute_output_shape(input_shape)


@keras.saving.register_keras_serializable(package="keras_onebit_deploy")
class FakeQuantConv2D(keras.layers.Conv2D):
    """Conv2D whose kernel passes through a per-channel fake_quant (int4 export)."""

    def __init__(self, *args, kernel_range=None, num_bits=4, **kwargs):
        super().__init__(*args, **kwargs)
        self.kernel_range = [float(r) for r in kernel_range]
        self.num_bits = int(num_bits)

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, fake_quant(kernel, self.kernel_range,
                                                         self.num_bits))

    def get_config(self):
        return {**super().get_config(), "kernel_range": self.kernel_range,
                "num_bits": self.num_bits}


@keras.saving.register_keras_serializable(package="keras_onebit_deploy")
class FakeQuantDense(keras.layers.Dense):
    """Dense whose kernel passes through a per-channel fake_quant (int4 export)."""

    def __init__(self, *args, kernel_range=None, num_bits=4, **kwargs):
        super().__init__(*args, **kwargs)
        self.kernel_range = [float(r) for r in kernel_range]
        self.num_bits = int(num_bits)

    def call(self, inputs):
        x = tf.matmul(inputs, fake_quant(self.kernel, self.kernel_range, self.num_bits))
        if self.bias is not None:
            x = x + self.bias
        return self.activation(x)

    def get_config(self):
        return {**super().get_config(), "kernel_range": self.kernel_range,
                "num_bits": self.num_bits}


def fake_quant(kernel, kernel_range, num_bits):
    r = tf.constant(kernel_range, tf.float32)
    return tf.quantization.fake_quant_with_min_max_vars_per_channel(
        kernel, -r, r, num_bits=num_bits, narrow_range=True)


def plain_config(layer):
    config = dict(layer.get_config())
    for key in ONEBIT_ARGS:
        config.pop(key, None)
    for key in ("kernel_regularizer", "bias_regularizer", "activity_regularizer",
                "kernel_constraint", "bias_constraint"):
        config[key] = None
    return config


def deploy_kernel(layer):
    """The forward kernel of a binary layer, float32 numpy (+-alpha)."""
    return np.asarray(keras.ops.convert_to_numpy(layer.forward_kernel()), np.float32)


def _clone_layer(layer, mode):
    kind = type(layer).__name__
    if kind in TRAINING_ONLY:
        return keras.layers.Identity(name=layer.name)
    if kind == "BitMaskReLU":  # differs from ReLU only in what training keeps
        return keras.layers.ReLU(name=layer.name)
    if isinstance(layer, BINARY_LAYERS):
        inner = _clone_binary_layer(layer, mode)
        return inner if layer.input_quantizer is None else SignInput(inner, name=layer.name)
    return layer.__class__.from_config(layer.get_config())


def _clone_binary_layer(layer, mode):
    """The deploy layer computing a binary layer's op on its (signed) input."""
    config = plain_config(layer)
    conv = isinstance(layer, keras.layers.Conv2D)
    if not is_binary(layer):
        return (keras.layers.Conv2D if conv else keras.layers.Dense)(**config)
    if mode == "int4":
        kernel_range = np.max(np.abs(deploy_kernel(layer)),
                              axis=tuple(range(len(layer.kernel.shape) - 1)))
        cls = FakeQuantConv2D if conv else FakeQuantDense
        return cls(**config, kernel_range=kernel_range.tolist())
    return (keras.layers.Conv2D if conv else keras.layers.Dense)(**config)


def deploy_clone(model, mode="float"):
    """A Keras model computing what `model` computes, with constant kernels."""
    if mode not in MODES:
        raise ExportError(f"Unknown deploy mode {mode!r}: expected one of {MODES}.")
    check_supported(model)
    if any(isinstance(layer, keras.Model) for layer in model.layers):
        nested = next(layer for layer in model.layers if isinstance(layer, keras.Model))
        raise ExportError(f"Cannot export nested model {nested.name!r} of type "
                          f"{type(nested).__name__}: flatten it into one functional model.")
    clone = keras.models.clone_model(model, clone_function=lambda layer: _clone_layer(layer, mode))
    if len(clone.layers) != len(model.layers):
        raise ExportError(f"Cloning {model.name!r} changed its layer count.")
    for old, new in zip(model.layers, clone.layers, strict=True):
        if not old.weights and not is_binary(old):
            continue
        if old.name != new.name:
            raise ExportError(f"Cloning {model.name!r}: layer {old.name!r} became {new.name!r}.")
        new.set_weights(_deploy_weights(old))
    return clone


def _deploy_weights(layer):
    """The numpy weights of the deploy layer replacing `layer`."""
    if isinstance(layer, BINARY_LAYERS):  # the forward kernel, then bias; no switch
        return [deploy_kernel(layer)] + [keras.ops.convert_to_numpy(w)
                                         for w in layer.extra_weights()]
    return [keras.ops.convert_to_numpy(w) for w in layer.weights]
