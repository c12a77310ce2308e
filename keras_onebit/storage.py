"""Stochastic one-bit storage of a layer's input for the backward pass
(McDonnell, Mostafa, van Schaik, NICE 2017; SPEC §5).

The forward pass uses the full-precision input x. What the layer keeps for
its weight gradient is one random bit per element instead of x:

    b = lo + s * Bernoulli(clip((x - lo) / s, 0, 1)),   so E[b] = x

on the range [lo, lo + s]. For a post-ReLU input (x >= 0), lo = 0 and
this is the paper's b = s * Bernoulli(clip(x / s, 0, 1)); for an input with
negative values (the stem conv after the input BN) lo = min(x), one more
scalar. The weight gradient computed from b is unbiased wherever x lies in
the range; the input gradient does not need x and stays exact. The bits are
packed 8 per byte (uint8), so a stored activation takes 1/32 of float32.

The choice of s is not published: `scale="max"` (per tensor, per batch:
nothing clipped, unbiased), `"percentile"` (s at a percentile of x, from a
strided sample of 65,536 elements; values above it are clipped, so a little
bias for less variance), or a fixed float. `bench/stochastic_storage.py`
measures the gradient error of each choice and the memory a training step
keeps for the backward pass.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_onebit.errors import ConfigError, require_tensorflow_backend
from keras_onebit.quantizers import Quantizer

SCALES = ("max", "percentile")
SAMPLE = 65536  # elements used to estimate a percentile
SHIFTS = np.arange(8, dtype=np.uint8)


def pack_bits(bits):
    """uint8 (ceil(n / 8),) from a 0/1 tensor of n elements (bit k of byte j
    is element 8 j + k, least significant first; zero padding)."""
    flat = tf.reshape(tf.cast(bits, tf.uint8), [-1])  # 1 byte per element, transient
    flat = tf.pad(flat, [[0, (-tf.size(flat)) % 8]])
    return tf.reduce_sum(tf.reshape(flat, [-1, 8]) * tf.constant(1 << SHIFTS), axis=1)


def unpack_bits(packed, shape, dtype=tf.float32):
    """The 0/1 tensor of `shape` that `pack_bits` packed."""
    bits = tf.bitwise.bitwise_and(
        tf.bitwise.right_shift(packed[:, None], tf.constant(SHIFTS)), tf.constant(1, tf.uint8))
    flat = tf.reshape(bits, [-1])[: tf.reduce_prod(shape)]
    return tf.reshape(tf.cast(flat, dtype), shape)


@keras.saving.register_keras_serializable(package="keras_onebit")
class StochasticBinaryStorage(Quantizer):
    """Keeps a layer's input for the weight gradient as one random bit per
    element (see the module docstring). A layer takes it as `input_storage`.

    Args:
        scale: `"max"` (default), `"percentile"`, or a fixed float s.
        percentile: the percentile of x used as lo + s with `"percentile"`.
    """

    def __init__(self, scale="max", percentile=99.0):
        if not isinstance(scale, (int, float)) and scale not in SCALES:
            raise ConfigError(f"Unknown scale {scale!r}: expected one of {SCALES} or a float.")
        if isinstance(scale, (int, float)) and scale <= 0:
            raise ConfigError(f"A fixed scale must be positive, got {scale}.")
        if not 0 < percentile <= 100:
            raise ConfigError(f"percentile must be in (0, 100], got {percentile}.")
        self.scale = float(scale) if isinstance(scale, (int, float)) else scale
        self.percentile = float(percentile)

    def value_range(self, x):
        """(lo, s): the stored values are lo and lo + s."""
        lo = tf.minimum(tf.reduce_min(x), 0.0)
        if self.scale == "max":
            s = tf.reduce_max(x) - lo
        elif self.scale == "percentile":
            flat = tf.reshape(x, [-1])
            sample = flat[:: tf.maximum(tf.size(flat) // SAMPLE, 1)]
            rank = tf.cast(tf.round((tf.cast(tf.size(sample), tf.float32) - 1.0)
                                    * self.percentile / 100.0), tf.int32)
            s = tf.sort(sample)[rank] - lo
        else:
            s = tf.constant(self.scale, x.dtype)
        return lo, tf.maximum(s, tf.constant(1e-12, x.dtype))

    def encode(self, x):
        """(packed uint8 bits, lo, s) of a random one-bit copy of x."""
        lo, s = self.value_range(x)
        p = tf.clip_by_value((x - lo) / s, 0.0, 1.0)
        return pack_bits(tf.random.uniform(tf.shape(x), dtype=x.dtype) < p), lo, s

    def decode(self, packed, lo, s, shape, dtype=tf.float32):
        return lo + s * unpack_bits(packed, shape, dtype)

    def __call__(self, x):
        """A random one-bit copy of x, decoded (for inspection and tests)."""
        x = tf.convert_to_tensor(x)
        return self.decode(*self.encode(x), tf.shape(x), x.dtype)

    def apply(self, op, x, kernel):
        """op(x, kernel), a linear map of x, whose backward pass keeps only
        the packed bits of x: d/dx exact, d/dkernel from the one-bit copy."""
        require_tensorflow_backend("Stochastic one-bit input storage")

        @tf.custom_gradient
        def forward(x, kernel):
            packed, lo, s = self.encode(x)
            shape = tf.shape(x)

            def grad(dy):
                # Decoding waits for dy: the graph executor would otherwise
                # run it as soon as the bits exist (in the forward pass) and
                # keep every decoded float copy alive until its use.
                with tf.control_dependencies([dy]):
                    stored = self.decode(packed, lo, s, shape, x.dtype)
                with tf.GradientTape() as tape:  # its forward op is pruned in graphs
                    tape.watch([stored, kernel])
                    y = op(stored, kernel)
                return tape.gradient(y, [stored, kernel], output_gradients=dy)

            return op(x, kernel), grad

        return forward(tf.convert_to_tensor(x), tf.convert_to_tensor(kernel))

    def get_config(self):
        return {"scale": self.scale, "percentile": self.percentile}


def relu_keeping_a_bit_mask(x):
    """max(x, 0) whose backward pass keeps the mask x > 0 packed 8 per byte
    instead of the float output (exact gradient: dy * 1[x > 0])."""

    @tf.custom_gradient
    def relu(x):
        mask = pack_bits(x > 0)
        shape = tf.shape(x)

        def grad(dy):
            with tf.control_dependencies([dy]):  # unpack late, as in `apply`
                return dy * unpack_bits(mask, shape, dy.dtype)

        return tf.nn.relu(x), grad

    return relu(tf.convert_to_tensor(x))


@keras.saving.register_keras_serializable(package="keras_onebit")
class BitMaskReLU(keras.layers.Layer):
    """ReLU for networks trained with stochastic one-bit storage: in training
    its backward pass keeps a one-bit mask, not the float output, so together
    with the next layer's `input_storage` the float activation is not kept
    at all. Inference (and export) is a plain ReLU."""

    def call(self, inputs, training=None):
        if training:
            require_tensorflow_backend("BitMaskReLU in training")
            return relu_keeping_a_bit_mask(inputs)
        return keras.ops.relu(inputs)


def get(identifier):
    """None, "stochastic_1bit", a config dict or a StochasticBinaryStorage."""
    if identifier is None or isinstance(identifier, StochasticBinaryStorage):
        return identifier
    if identifier == "stochastic_1bit":
        return StochasticBinaryStorage()
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    raise ConfigError(f"Unknown input storage {identifier!r}: expected None, "
                     "'stochastic_1bit' or a StochasticBinaryStorage.")
