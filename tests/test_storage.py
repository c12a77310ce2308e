"""Stochastic one-bit storage of layer inputs for the backward pass (SPEC §5)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_onebit import BinaryConv2D, BinaryDense, models
from keras_onebit.storage import StochasticBinaryStorage, pack_bits, unpack_bits


def relu_input(shape, seed=0):
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(size=shape), 0).astype(np.float32)


def test_bits_pack_eight_per_byte_and_round_trip():
    bits = np.random.default_rng(0).integers(0, 2, size=(3, 5, 7)).astype(np.float32)
    packed = pack_bits(bits)
    assert packed.dtype == tf.uint8 and packed.shape == (math_ceil_div(bits.size, 8),)
    np.testing.assert_array_equal(unpack_bits(packed, bits.shape).numpy(), bits)
    assert pack_bits(np.array([1, 0, 1, 1, 0, 0, 0, 0, 1], np.float32)).numpy().tolist() == [13, 1]


def math_ceil_div(a, b):
    return -(-a // b)


def test_stored_copy_has_two_values_and_is_unbiased():
    x = relu_input((64, 50))
    storage = StochasticBinaryStorage("max")
    tf.random.set_seed(0)
    draws = np.stack([storage(x).numpy() for _ in range(400)])
    s = x.max()
    assert np.unique(draws).tolist() == pytest.approx([0.0, s])
    # E[b] = x: the mean of 400 draws is within 5 standard errors everywhere.
    se = np.sqrt(np.clip(x * (s - x), 0, None) / 400) + 1e-6
    assert np.all(np.abs(draws.mean(0) - x) <= 5 * se + 1e-5)
    assert np.all(draws[:, x == 0] == 0)  # zeros (post-ReLU) are stored exactly


def test_signed_input_uses_its_minimum_and_stays_unbiased():
    x = np.random.default_rng(1).normal(size=(32, 32)).astype(np.float32)
    storage = StochasticBinaryStorage("max")
    lo, s = (v.numpy() for v in storage.value_range(x))
    assert lo == pytest.approx(x.min()) and lo + s == pytest.approx(x.max())
    tf.random.set_seed(1)
    mean = np.mean([storage(x).numpy() for _ in range(400)], axis=0)
    se = np.sqrt(np.clip((x - lo) * (lo + s - x), 0, None) / 400) + 1e-6
    assert np.all(np.abs(mean - x) <= 5 * se + 1e-5)
    assert abs((mean - x).mean()) < 5 * se.mean() / np.sqrt(x.size)  # no overall offset


def test_scale_options():
    x = relu_input((100, 100))
    lo, s = StochasticBinaryStorage("percentile", percentile=90).value_range(x)
    assert float(s) == pytest.approx(np.percentile(x, 90), rel=0.02)
    assert float(StochasticBinaryStorage(2.5).value_range(x)[1]) == 2.5
    for bad in ("median", -1.0):
        with pytest.raises(ValueError, match="scale"):
            StochasticBinaryStorage(bad)


def conv_grads(layer, x, dy):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
    return [g.numpy() for g in tape.gradient(y, [x, layer.kernel], output_gradients=dy)]


def test_conv_input_gradient_exact_weight_gradient_unbiased():
    x = relu_input((4, 6, 6, 3))
    exact = BinaryConv2D(5, 3, padding="same")
    stochastic = BinaryConv2D(5, 3, padding="same", input_storage="stochastic_1bit")
    stochastic.build(x.shape)
    exact.build(x.shape)
    stochastic.kernel.assign(exact.kernel)
    dy = np.random.default_rng(2).normal(size=(4, 6, 6, 5)).astype(np.float32)
    dx, dw = conv_grads(exact, x, dy)
    tf.random.set_seed(2)
    samples = [conv_grads(stochastic, x, dy) for _ in range(200)]
    for sdx, _ in samples:
        np.testing.assert_allclose(sdx, dx, rtol=1e-5, atol=1e-6)
    one = np.abs(samples[0][1] - dw).mean() / np.abs(dw).mean()
    mean = np.abs(np.mean([s[1] for s in samples], axis=0) - dw).mean() / np.abs(dw).mean()
    assert one > 0.05  # a single draw is noisy...
    assert mean < one / 5  # ...and the mean of 200 draws converges (1/sqrt(200) ~ 1/14)
    np.testing.assert_allclose(stochastic(x).numpy(), exact(x).numpy(), rtol=1e-6)


def test_dense_and_config_round_trip():
    layer = BinaryDense(3, input_storage=StochasticBinaryStorage("percentile", 95.0))
    clone = BinaryDense.from_config(layer.get_config())
    assert (clone.input_storage.scale, clone.input_storage.percentile) == ("percentile", 95.0)
    x = relu_input((8, 4))
    clone.build(x.shape)
    with tf.GradientTape() as tape:
        y = clone(x, training=True)
    assert tape.gradient(y, clone.kernel).shape == (4, 3)
    with pytest.raises(ValueError, match="Unknown input storage"):
        BinaryDense(3, input_storage="two_bits")


def test_wrn_trains_with_stochastic_storage():
    with np.load("../shared/data/mnist.npz", allow_pickle=False) as d:
        x = d["x_train"][:256, ..., None].astype("float32")
        y = d["y_train"][:256]
    keras.utils.set_random_seed(0)
    model = models.wrn(8, 1, input_shape=(28, 28, 1), input_storage="stochastic_1bit")
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=32, epochs=3, verbose=0).history["loss"]
    assert history[-1] < history[0]


def test_bit_mask_relu_gradient_is_exact_and_deploys_as_relu():
    from keras_onebit.export import deploy
    from keras_onebit.storage import BitMaskReLU

    x = tf.constant(np.random.default_rng(3).normal(size=(4, 5, 5, 3)).astype(np.float32))
    x = tf.tensor_scatter_nd_update(x, [[0, 0, 0, 0]], [0.0])  # relu'(0) = 0 as in TF
    dy = tf.constant(np.random.default_rng(4).normal(size=x.shape).astype(np.float32))
    layer = BitMaskReLU()
    grads = []
    for fn in (lambda t: layer(t, training=True), tf.nn.relu):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        grads.append(tape.gradient(y, x, output_gradients=dy).numpy())
        np.testing.assert_array_equal(y.numpy(), tf.nn.relu(x).numpy())
    np.testing.assert_array_equal(grads[0], grads[1])
    model = models.wrn(8, 1, input_storage="stochastic_1bit")
    clone = deploy.deploy_clone(model)
    assert not any(type(layer).__name__ == "BitMaskReLU" for layer in clone.layers)
    pixels = np.random.default_rng(5).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(clone.predict(pixels, verbose=0), model.predict(pixels, verbose=0),
                               rtol=1e-5, atol=1e-6)
