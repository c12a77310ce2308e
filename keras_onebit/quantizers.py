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
from keras import ops

from keras_onebit.errors import ConfigError, one_line

SCALES = ("he", "mean_abs", "none")
GRADIENTS = ("ste", "clipped", "magnitude_aware")


def sign(x):
    """+1 where x >= 0, -1 elsewhere (so sign(0) = +1), in x's dtype.

    Args:
        x: a tensor or array-like.

    Returns:
        A tensor of x's shape and dtype holding +1 and -1.
    """
    x = ops.convert_to_tensor(x)
    one = ops.ones_like(x)
    return ops.where(x >= 0, one, -one)


def check_options(scale, gradient):
    """Raises ConfigError (one line) unless `scale` is one of SCALES or a finite
    positive number and `gradient` one of GRADIENTS: the one check of these
    options, for quantizers and layers alike (their __init__ and from_config).

    Args:
        scale: the weight scale option.
        gradient: the weight gradient option.

    Raises:
        ConfigError: naming the bad value and the accepted ones.
    """
    if isinstance(scale, str) or isinstance(scale, bool) or not isinstance(scale, int | float):
        if scale not in SCALES:
            raise ConfigError(f"Unknown scale {scale!r:.80}: expected one of {SCALES} or a "
                              "positive float.")
    elif not (math.isfinite(scale) and scale > 0):
        raise ConfigError(f"scale must be a finite positive number, got {scale!r}.")
    if not isinstance(gradient, str) or gradient not in GRADIENTS:
        raise ConfigError(f"Unknown gradient {gradient!r:.80}: expected one of {GRADIENTS}.")


def fan_in(shape):
    """Inputs that feed one output unit: every axis but the last (HWIO / IO).

    Args:
        shape: a kernel shape, e.g. `(kh, kw, c_in, c_out)` or `(c_in, c_out)`.

    Returns:
        The product of all dimensions but the last, a Python int.
    """
    return math.prod(int(d) for d in shape[:-1])


def he_scale(shape):
    """The He-normal std of a kernel of this shape: sqrt(2 / fan_in).

    This is McDonnell's constant one-bit scale alpha (`SignWeight(scale="he")`).

    Args:
        shape: a kernel shape; `fan_in(shape)` must be positive.

    Returns:
        sqrt(2 / fan_in(shape)), a Python float.
    """
    return math.sqrt(2.0 / fan_in(shape))


def upstream_gradient(args, upstream):
    """The incoming gradient of a `keras.ops.custom_gradient` grad function
    (positional on TensorFlow, keyword on some backends)."""
    return args[0] if upstream is None else upstream


def sign_with_gradient(x, gradient):
    """sign(x) (sign(0) = +1) whose backward pass is `gradient(x, g)` for the
    incoming gradient g: the binary activations' shared form."""

    @ops.custom_gradient
    def forward(x):
        def grad(*args, upstream=None):
            return gradient(x, upstream_gradient(args, upstream))

        return sign(x), grad

    return forward(ops.convert_to_tensor(x))


def approx_sign_gradient(x, g):
    """Bi-Real Net's ApproxSign: g times 2 + 2x on [-1, 0), 2 - 2x on [0, 1), else 0."""
    slope = ops.where(x < 0, 2.0 + 2.0 * x, 2.0 - 2.0 * x)
    inside = ops.logical_and(x >= -1.0, x < 1.0)
    return g * ops.where(inside, slope, ops.zeros_like(x))


def clipped_gradient(x, g):
    """The clipped straight-through estimator: g where |x| <= 1, else 0."""
    return g * ops.cast(ops.abs(x) <= 1.0, g.dtype)


class Quantizer:
    """Base class: a callable with a Keras config.

    `precision` is the bits per value it produces (1 for the sign
    quantizers), as larq's quantizers report it; `summary` counts memory
    with it. Subclass it (and register the subclass with
    `keras.saving.register_keras_serializable`) for a quantizer of your own.

    The base class takes no arguments; a subclass's constructor arguments
    must be what its `get_config` returns (the default `from_config` calls
    `cls(**config)`).
    """

    precision = 32

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

    Written with `keras.ops` (`keras.ops.custom_gradient`), so it runs on
    every Keras backend with the same values and gradients.

    Args:
        scale: `"he"` (default) the constant `sqrt(2 / fan_in)` of the layer,
            a Python float, never learned (McDonnell); `"mean_abs"` mean |W|
            over each output channel (XNOR-Net / Bi-Real Net), treated as a
            constant in the backward pass; `"none"` for plain +-1; or a float.
        gradient: what reaches the latent weight from g = dL/dW_hat.
            `"ste"` (default) g itself, unscaled and unclipped (McDonnell);
            `"clipped"` g * 1[|W| <= 1]; `"magnitude_aware"`
            alpha * g * 1[|W| <= 1] (Bi-Real Net).

    Raises:
        ConfigError: an unknown scale or gradient.
    """

    precision = 1

    def __init__(self, scale="he", gradient="ste"):
        check_options(scale, gradient)
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
            return ops.mean(ops.abs(kernel), axis=axes)
        return self.scale

    def __call__(self, kernel):
        @ops.custom_gradient
        def binarize(w):
            alpha = ops.cast(self.alpha(w), w.dtype)

            def grad(*args, upstream=None):
                g = upstream_gradient(args, upstream)
                if self.gradient == "ste":
                    return g
                inside = ops.cast(ops.abs(w) <= 1.0, g.dtype)
                if self.gradient == "clipped":
                    return g * inside
                return alpha * g * inside

            return alpha * sign(w), grad

        # A copy, not the variable: TensorFlow's custom_gradient would otherwise ask
        # for the gradient of the variable itself (its `variables=` argument).
        return binarize(ops.copy(kernel))

    def get_config(self):
        return {"scale": self.scale, "gradient": self.gradient}


@keras.saving.register_keras_serializable(package="keras_onebit")
class ApproxSign(Quantizer):
    """Binary activation of Bi-Real Net: forward sign(x), sign(0) = +1.

    Backward ("ApproxSign", Liu et al. 2018): the gradient is multiplied by
    2 + 2x on [-1, 0), 2 - 2x on [0, 1) and 0 outside.

    Takes no constructor arguments; call it on a tensor to get the +-1 tensor
    of the same shape.
    """

    precision = 1

    def __call__(self, x):
        return sign_with_gradient(x, approx_sign_gradient)


@keras.saving.register_keras_serializable(package="keras_onebit")
class SteSign(Quantizer):
    """Binary activation with the clipped straight-through gradient
    (BinaryNet / larq `ste_sign`): forward sign(x), backward g * 1[|x| <= 1].

    Takes no constructor arguments; call it on a tensor to get the +-1 tensor
    of the same shape.
    """

    precision = 1

    def __call__(self, x):
        return sign_with_gradient(x, clipped_gradient)


ACTIVATION_QUANTIZERS = {"approx_sign": ApproxSign, "ste_sign": SteSign}

# Kernel quantizers by name. Each is a SignWeight, so the exporter can store
# its sign bits and scale: "ste_sign" on a kernel is larq's weight
# quantizer (sign(W), no scale, clipped gradient).
KERNEL_QUANTIZERS = {
    "sign_weight": lambda: SignWeight(),
    "ste_sign": lambda: SignWeight(scale="none", gradient="clipped"),
    "magnitude_aware_sign": lambda: SignWeight(scale="mean_abs", gradient="magnitude_aware"),
}


def _from_identifier(identifier, names, what):
    if identifier is None or isinstance(identifier, Quantizer):
        return identifier
    if isinstance(identifier, str):
        if identifier not in names:
            raise ConfigError(
                f"Unknown {what} {identifier!r}: expected one of {sorted(names)}, a "
                "keras_onebit.quantizers.Quantizer or its config."
            )
        return names[identifier]()
    if isinstance(identifier, dict):
        return _from_config(identifier, what)
    raise ConfigError(f"Cannot interpret {identifier!r} as a {what}.")


def _from_config(config, what):
    """The quantizer of a serialized config; only registered `Quantizer` classes
    are built (nothing else a config names is looked up or called)."""
    name = config.get("registered_name") or config.get("class_name")
    cls = keras.saving.get_registered_object(name) if isinstance(name, str) else None
    if cls is None and isinstance(name, str):
        cls = keras.saving.get_registered_object(f"keras_onebit>{name}")
    if not (isinstance(cls, type) and issubclass(cls, Quantizer)):
        raise ConfigError(f"Cannot build a {what} from the config {config!r:.120}: "
                          f"{name!r:.60} is not a registered keras_onebit Quantizer class.")
    try:
        quantizer = keras.saving.deserialize_keras_object(config)
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        if isinstance(e, ConfigError):
            raise
        reason = one_line(e, 160)
        raise ConfigError(f"Cannot build a {what} from the config {config!r:.120}: "
                          f"{type(e).__name__}: {reason}") from e
    if not isinstance(quantizer, Quantizer):
        raise ConfigError(f"{config!r:.120} is not a keras_onebit quantizer config.")
    return quantizer


def get(identifier):
    """An activation quantizer from None, a name, a config dict or an instance.

    Args:
        identifier: None, "approx_sign", "ste_sign", a `Quantizer` or the
            dict `serialize` returned.

    Returns:
        A `Quantizer` instance, or None.

    Raises:
        ConfigError: an unknown name or an object that is not a quantizer.
    """
    return _from_identifier(identifier, ACTIVATION_QUANTIZERS, "quantizer")


def get_kernel_quantizer(identifier):
    """A kernel quantizer from None, a name, a config dict or an instance.

    Args:
        identifier: None, one of `KERNEL_QUANTIZERS` ("sign_weight",
            "ste_sign", "magnitude_aware_sign"), a `Quantizer` or its config.

    Returns:
        A `Quantizer` instance, or None.

    Raises:
        ConfigError: an unknown name or an object that is not a quantizer.
    """
    return _from_identifier(identifier, KERNEL_QUANTIZERS, "kernel quantizer")


def serialize(quantizer):
    """The Keras config dict of a quantizer (None for None).

    `get` and `get_kernel_quantizer` take the dict back.

    Args:
        quantizer: a `Quantizer` instance or None.

    Returns:
        The dict of `keras.saving.serialize_keras_object`, or None.
    """
    if quantizer is None:
        return None
    return keras.saving.serialize_keras_object(quantizer)
