"""Quantizers: small objects that a layer takes as arguments (larq style).

A weight quantizer maps a latent float kernel to the kernel used in the
forward pass, and defines the gradient that flows back to the latent kernel.
An activation quantizer does the same for a layer's input.

`SignWeight` is McDonnell (ICLR 2018) by default: forward `alpha * sign(W)`
with the constant `alpha = sqrt(2 / fan_in)` and a plain straight-through
gradient. Its options give the per-channel mean-|W| scale (XNOR-Net,
Bi-Real Net) and the clipped and magnitude-aware gradients.
"""

import math

import keras
import tensorflow as tf

from keras_onebit.errors import ConfigError

SCALES = ("he", "mean_abs", "none")
GRADIENTS = ("ste", "clipped", "magnitude_aware")


def sign(x):
    """+1 where x >= 0, -1 elsewhere (so sign(0) = +1), in x's dtype."""
    return tf.where(x >= 0, tf.ones_like(x), -tf.ones_like(x))


def fan_in(shape):
    """Inputs that feed one output unit: every axis but the last (HWIO / IO)."""
    return math.prod(int(d) for d in shape[:-1])


def he_scale(shape):
    """The He-normal std of a kernel of this shape: sqrt(2 / fan_in)."""
    return math.sqrt(2.0 / fan_in(shape))


class Quantizer:
    """Base class: a callable with a Keras config."""

    def __call__(self, x):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@keras.saving.register_keras_serializable(package="keras_onebit")
class SignWeight(Quantizer):
    """One-bit weight quantizer: forward `alpha * sign(W)`.

    Args:
        scale: `"he"` (default) the constant `sqrt(2 / fan_in)` of the layer,
            a Python float, never learned (McDonnell); `"mean_abs"` mean |W|
            over each output channel (XNOR-Net / Bi-Real Net), treated as a
            constant in the backward pass; `"none"` for plain +-1; or a float.
        gradient: what reaches the latent weight from g = dL/dW_hat.
            `"ste"` (default) g itself, unscaled and unclipped (McDonnell);
            `"clipped"` g * 1[|W| <= 1]; `"magnitude_aware"`
            alpha * g * 1[|W| <= 1] (Bi-Real Net).
    """

    def __init__(self, scale="he", gradient="ste"):
        if not isinstance(scale, (int, float)) and scale not in SCALES:
            raise ConfigError(
                f"Unknown scale {scale!r}: expected one of {SCALES} or a float."
            )
        if gradient not in GRADIENTS:
            raise ConfigError(
                f"Unknown gradient {gradient!r}: expected one of {GRADIENTS}."
            )
        self.scale = float(scale) if isinstance(scale, (int, float)) else scale
        self.gradient = gradient

    @property
    def per_channel(self):
        return self.scale == "mean_abs"

    def alpha(self, kernel):
        """The scale of this kernel: a Python float, or a (C_out,) tensor."""
        if self.scale == "he":
            return he_scale(kernel.shape)
        if self.scale == "none":
            return 1.0
        if self.scale == "mean_abs":
            axes = list(range(len(kernel.shape) - 1))
            return tf.reduce_mean(tf.abs(kernel), axis=axes)
        return self.scale

    def __call__(self, kernel):
        kernel = tf.identity(kernel)  # a tensor, so custom_gradient applies

        @tf.custom_gradient
        def binarize(w):
            alpha = tf.cast(self.alpha(w), w.dtype)

            def grad(g):
                if self.gradient == "ste":
                    return g
                inside = tf.cast(tf.abs(w) <= 1.0, g.dtype)
                if self.gradient == "clipped":
                    return g * inside
                return alpha * g * inside

            return alpha * sign(w), grad

        return binarize(kernel)

    def get_config(self):
        return {"scale": self.scale, "gradient": self.gradient}


@keras.saving.register_keras_serializable(package="keras_onebit")
class ApproxSign(Quantizer):
    """Binary activation of Bi-Real Net: forward sign(x), sign(0) = +1.

    Backward ("ApproxSign", Liu et al. 2018): the gradient is multiplied by
    2 + 2x on [-1, 0), 2 - 2x on [0, 1) and 0 outside.
    """

    def __call__(self, x):
        @tf.custom_gradient
        def approx_sign(x):
            def grad(g):
                slope = tf.where(x < 0, 2.0 + 2.0 * x, 2.0 - 2.0 * x)
                inside = tf.logical_and(x >= -1.0, x < 1.0)
                return g * tf.where(inside, slope, tf.zeros_like(x))

            return sign(x), grad

        return approx_sign(tf.convert_to_tensor(x))


@keras.saving.register_keras_serializable(package="keras_onebit")
class SteSign(Quantizer):
    """Binary activation with the clipped straight-through gradient
    (BinaryNet / larq `ste_sign`): forward sign(x), backward g * 1[|x| <= 1]."""

    def __call__(self, x):
        @tf.custom_gradient
        def ste_sign(x):
            def grad(g):
                return g * tf.cast(tf.abs(x) <= 1.0, g.dtype)

            return sign(x), grad

        return ste_sign(tf.convert_to_tensor(x))


ACTIVATION_QUANTIZERS = {"approx_sign": ApproxSign, "ste_sign": SteSign}


def get(identifier):
    """A quantizer from None, a name, a config dict or an instance."""
    if identifier is None or isinstance(identifier, Quantizer):
        return identifier
    if isinstance(identifier, str):
        if identifier not in ACTIVATION_QUANTIZERS:
            raise ConfigError(
                f"Unknown quantizer {identifier!r}: expected one of "
                f"{sorted(ACTIVATION_QUANTIZERS)}."
            )
        return ACTIVATION_QUANTIZERS[identifier]()
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    raise ConfigError(f"Cannot interpret {identifier!r} as a quantizer.")


def serialize(quantizer):
    if quantizer is None:
        return None
    return keras.saving.serialize_keras_object(quantizer)
