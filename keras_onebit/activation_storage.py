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
measures the gradient error of each choice and the peak memory of a
training step.

What the backward pass keeps (tests/test_storage.py reads it off the
training graph): per conv the packed bits, lo and s; per `BitMaskReLU` and
`ShiftedReLU` (the no-BN WRN's max(x, -1)) a one-bit mask. The float input
is not captured: the bits are drawn outside the custom gradient from
stop_gradient(x) and the gradient closure holds only the bits, x's shape and
dtype. With batch norm, each Keras BatchNormalization still keeps its own
float input (the conv output or residual sum); without BN nothing float of
an activation's size is kept. On TensorFlow a few control dependencies make
this hold at the peak too (see `_after`): kept bits are no use if the graph
executor holds the float activations of many layers at once while their
encoding or decoding waits to be scheduled.

Backends: TensorFlow and JAX (`keras.ops.custom_gradient`, `keras.random`
with the layer's `SeedGenerator`, the weight gradient by `tf.GradientTape`
or `jax.vjp`).
"""

import keras
import numpy as np
from keras import ops

from keras_onebit.errors import ConfigError
from keras_onebit.lazy import tensorflow as tf
from keras_onebit.quantizers import Quantizer, upstream_gradient

SCALES = ("max", "percentile")
SAMPLE = 65536  # elements used to estimate a percentile
SHIFTS = np.arange(8, dtype=np.uint8)


def _on_jax():
    return keras.backend.backend() == "jax"


CUSTOM_GRADIENT_BACKENDS = ("tensorflow", "jax")  # where this module's custom gradients run


def check_backend(what):
    """Refuses a backend this module's custom gradients do not cover.

    Args:
        what: the feature, named in the message.

    Raises:
        BackendError: (one line) unless Keras runs on TensorFlow or JAX.
    """
    backend = keras.backend.backend()
    if backend not in CUSTOM_GRADIENT_BACKENDS:
        from keras_onebit.errors import BackendError

        raise BackendError(f"{what} runs on the TensorFlow and JAX backends; Keras runs on "
                           f"{backend!r}.")


def _static_size(x):
    """The number of elements of x as a Python int, or None when a dimension
    is only known at run time (a TensorFlow graph with a free batch size)."""
    shape = tuple(x.shape)
    return None if any(d is None for d in shape) else int(np.prod(shape, dtype=np.int64))


def pack_bits(bits):
    """uint8 (ceil(n / 8),) from a 0/1 tensor of n elements (bit k of byte j
    is element 8 j + k, least significant first; zero padding).

    Args:
        bits: a tensor of 0/1 (or boolean) values, any shape (flattened in
            row-major order).

    Returns:
        A uint8 tensor of shape (ceil(n / 8),), a backend tensor (TensorFlow
        or JAX).
    """
    if _on_jax():
        import jax.numpy as jnp

        return jnp.packbits(jnp.ravel(jnp.asarray(bits)).astype(bool), bitorder="little")
    flat = tf.reshape(tf.cast(bits, tf.uint8), [-1])  # 1 byte per element, transient
    flat = tf.pad(flat, [[0, (-tf.size(flat)) % 8]])
    return tf.reduce_sum(tf.reshape(flat, [-1, 8]) * tf.constant(1 << SHIFTS), axis=1)


def unpack_bits(packed, shape, dtype="float32"):
    """The 0/1 tensor of `shape` that `pack_bits` packed.

    Args:
        packed: the uint8 tensor `pack_bits` returned.
        shape: the shape of the original tensor (its n elements are the first
            n bits; the padding bits are dropped).
        dtype: the dtype of the result (default "float32").

    Returns:
        A tensor of `shape` and `dtype` holding 0 and 1.
    """
    if _on_jax():
        import jax.numpy as jnp

        shape = tuple(int(d) for d in shape)
        bits = jnp.unpackbits(packed, count=int(np.prod(shape, dtype=np.int64)),
                              bitorder="little")
        return bits.reshape(shape).astype(keras.backend.standardize_dtype(dtype))
    bits = tf.bitwise.bitwise_and(
        tf.bitwise.right_shift(packed[:, None], tf.constant(SHIFTS)), tf.constant(1, tf.uint8))
    flat = tf.reshape(bits, [-1])[: tf.reduce_prod(shape)]
    return tf.reshape(tf.cast(flat, dtype), shape)


def _after(tensors, fn):
    """fn() whose ops run only once `tensors` exist. On TensorFlow an op
    without a data input (a random draw of a static shape, the decoding of
    stored bits) is otherwise run by the graph executor as soon as the step
    starts, and its float output stays alive until its consumer runs: every
    layer's random numbers at once in the forward pass, every decoded copy
    at once in the backward pass. XLA (JAX) schedules by data dependencies
    and memory, so there it is just fn()."""
    if _on_jax():
        return fn()
    with tf.control_dependencies(tensors):
        return fn()


def _shape(x):
    """x's shape: Python ints on JAX, a runtime shape tensor on TensorFlow."""
    return tuple(x.shape) if _on_jax() else tf.shape(x)


def _vjp(op, x, kernel, dy):
    """(d/dx, d/dkernel) of sum(op(x, kernel) * dy), by the backend's autodiff
    (op is re-run on the decoded copy: in a graph its output is not used and
    is pruned, XLA drops it too)."""
    if _on_jax():
        import jax

        return jax.vjp(op, x, kernel)[1](dy)
    with tf.GradientTape() as tape:
        tape.watch([x, kernel])
        y = op(x, kernel)
    dx, dkernel = tape.gradient(y, [x, kernel], output_gradients=dy)
    # dx (the way on to the earlier layers) waits for dkernel, so dy and the
    # decoded copy are freed before the next layer's copy is decoded.
    with tf.control_dependencies([dkernel]):
        return tf.identity(dx), dkernel


@keras.saving.register_keras_serializable(package="keras_onebit")
class StochasticBinaryStorage(Quantizer):
    """Keeps a layer's input for the weight gradient as one random bit per
    element (see the module docstring). A layer takes it as `input_storage`.

    Written with `keras.ops`, `keras.ops.custom_gradient` and `keras.random`
    (the layer owns a `keras.random.SeedGenerator` and passes it to `apply`,
    so the draws are seeded random ops inside a compiled JAX step too): runs
    on the TensorFlow and JAX backends.

    Args:
        scale: `"max"` (default), `"percentile"`, or a fixed float s.
        percentile: the percentile of x used as lo + s with `"percentile"`,
            in (0, 100] (default 99).

    Raises:
        ConfigError: an unknown scale name, a fixed scale <= 0, or a
            percentile outside (0, 100].
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
        self._seed_generator = None  # for calls without a layer's generator

    def value_range(self, x):
        """(lo, s): the stored values are lo and lo + s."""
        x = ops.convert_to_tensor(x)
        lo = ops.minimum(ops.min(x), ops.cast(0.0, x.dtype))
        if self.scale == "max":
            s = ops.max(x) - lo
        elif self.scale == "percentile":
            s = self._percentile(x) - lo
        else:
            s = ops.cast(self.scale, x.dtype)
        return lo, ops.maximum(s, ops.cast(1e-12, x.dtype))

    def _percentile(self, x):
        """The percentile of x, from a strided sample of about SAMPLE elements."""
        flat = ops.reshape(x, [-1])
        n = _static_size(x)
        if n is None:  # TensorFlow graph with a free batch size
            sample = flat[:: tf.maximum(tf.size(flat) // SAMPLE, 1)]
            rank = tf.cast(tf.round((tf.cast(tf.size(sample), tf.float32) - 1.0)
                                    * self.percentile / 100.0), tf.int32)
            return tf.sort(sample)[rank]
        sample = flat[:: max(n // SAMPLE, 1)]
        count = -(-n // max(n // SAMPLE, 1))
        return ops.sort(sample)[int(round((count - 1) * self.percentile / 100.0))]

    def encode(self, x, seed=None):
        """(packed uint8 bits, lo, s) of a random one-bit copy of x: bit 1
        with probability clip((x - lo) / s, 0, 1), i.e. where u * s < x - lo
        for u uniform in [0, 1). `seed`: a `keras.random.SeedGenerator`
        (default: one this object owns)."""
        x = ops.convert_to_tensor(x)
        lo, s = self.value_range(x)
        if seed is None:
            if self._seed_generator is None:
                self._seed_generator = keras.random.SeedGenerator()
            seed = self._seed_generator
        u = _after([x], lambda: keras.random.uniform(_shape(x), dtype=x.dtype, seed=seed))
        return pack_bits(u * s < x - lo), lo, s

    def decode(self, packed, lo, s, shape, dtype="float32"):
        return lo + s * unpack_bits(packed, shape, dtype)

    def __call__(self, x, seed=None):
        """A random one-bit copy of x, decoded (for inspection and tests)."""
        x = ops.convert_to_tensor(x)
        return self.decode(*self.encode(x, seed), _shape(x), x.dtype)

    def apply(self, op, x, kernel, seed=None):
        """op(x, kernel), a linear map of x, whose backward pass keeps only
        the packed bits of x (and two scalars): d/dx exact, d/dkernel from the
        one-bit copy. Nothing of the float x is captured by the gradient
        function (tests/test_storage.py inspects the training graph).
        `seed`: the calling layer's `keras.random.SeedGenerator`."""
        check_backend("Stochastic one-bit input storage")
        x, kernel = ops.convert_to_tensor(x), ops.convert_to_tensor(kernel)
        # Drawn outside the custom gradient: the seed generator's state update
        # must happen in the layer's own trace on JAX.
        packed, lo, s = self.encode(ops.stop_gradient(x), seed)
        shape, dtype = _shape(x), x.dtype  # not x itself: a closure would keep it

        @ops.custom_gradient
        def forward(x, kernel):
            def grad(*args, upstream=None):
                dy = upstream_gradient(args, upstream)
                # Decoded only once dy exists, so copies are made one layer at a time.
                stored = _after([dy], lambda: self.decode(packed, lo, s, shape, dtype))
                return _vjp(op, stored, kernel, dy)

            # The output waits for the bits: the next layers cannot run (and
            # make new activations) while x is still waiting to be encoded.
            return _after([packed, lo, s], lambda: op(x, kernel)), grad

        return forward(x, kernel)

    def get_config(self):
        return {"scale": self.scale, "percentile": self.percentile}


def relu_keeping_a_bit_mask(x, floor=0.0):
    """max(x, floor) whose backward pass keeps a one-bit mask packed 8 per
    byte instead of a float tensor. The gradient is TensorFlow's, exactly, on
    every backend: dy * 1[x > 0] for the ReLU (floor 0), dy * 1[x >= floor]
    for another floor (tf.maximum's: a tie goes to x; JAX's own maximum
    would give a tie half). On PyTorch: the same values and gradient, without
    the memory saving."""
    x = ops.convert_to_tensor(x)
    floor = float(floor)
    if keras.backend.backend() not in CUSTOM_GRADIENT_BACKENDS:
        # PyTorch: the same forward and gradient (`where` routes dy to the branch it takes),
        # keeping the float input for the backward pass: no memory saved there.
        return ops.where(x > 0 if floor == 0.0 else x >= floor, x, ops.cast(floor, x.dtype))

    @ops.custom_gradient
    def relu(x):
        mask = pack_bits(x > 0 if floor == 0.0 else x >= floor)
        shape = _shape(x)

        def grad(*args, upstream=None):
            dy = upstream_gradient(args, upstream)
            return dy * _after([dy], lambda: unpack_bits(mask, shape, dy.dtype))

        if floor == 0.0:  # the output waits for the mask, as in `apply`
            return _after([mask], lambda: ops.relu(x)), grad
        return _after([mask], lambda: ops.maximum(x, ops.cast(floor, x.dtype))), grad

    return relu(x)


@keras.saving.register_keras_serializable(package="keras_onebit")
class BitMaskReLU(keras.layers.Layer):
    """ReLU for networks trained with stochastic one-bit storage: in training
    its backward pass keeps a one-bit mask, not the float output, so together
    with the next layer's `input_storage` the float activation is not kept
    at all. Inference (and export) is a plain ReLU.

    Training with it runs on the TensorFlow and JAX backends (a `BackendError`
    on others).

    Args:
        **kwargs: as `keras.layers.Layer` (name, dtype, ...).
    """

    def call(self, inputs, training=None):
        if training:
            return relu_keeping_a_bit_mask(inputs)
        return keras.ops.relu(inputs)


def get(identifier):
    """An input storage from None, "stochastic_1bit", a config dict or an instance.

    Args:
        identifier: None, "stochastic_1bit", a `StochasticBinaryStorage`, or
            the dict `quantizers.serialize` returned for one.

    Returns:
        A `StochasticBinaryStorage` (the deserialized object for a dict), or
        None.

    Raises:
        ConfigError: any other identifier.
    """
    if identifier is None or isinstance(identifier, StochasticBinaryStorage):
        return identifier
    if identifier == "stochastic_1bit":
        return StochasticBinaryStorage()
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    raise ConfigError(f"Unknown input storage {identifier!r}: expected None, "
                     "'stochastic_1bit' or a StochasticBinaryStorage.")
