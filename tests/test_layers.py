import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_onebit import BinaryConv2D, BinaryDense


def test_conv_forward_equals_conv_with_plus_minus_alpha_kernel():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 8, 8, 5)).astype(np.float32)
    layer = BinaryConv2D(7, 3, padding="same")
    y = layer(x).numpy()
    alpha = np.sqrt(2 / (3 * 3 * 5))
    kernel = np.where(layer.kernel.numpy() >= 0, alpha, -alpha).astype(np.float32)
    expected = tf.nn.conv2d(x, kernel, 1, "SAME").numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    assert layer.kernel_alpha() == pytest.approx(alpha)
    assert layer.use_bias is False


def test_forward_kernel_has_exactly_two_values():
    layer = BinaryConv2D(16, 3)
    layer.build((None, 8, 8, 160))
    values = np.unique(layer.forward_kernel().numpy())
    assert values.tolist() == pytest.approx([-0.037268, 0.037268], abs=1e-6)


def test_float_twin_uses_latent_kernel():
    layer = BinaryDense(4, binary=False)
    x = np.ones((1, 3), np.float32)
    np.testing.assert_allclose(layer(x).numpy(), x @ layer.kernel.numpy(), rtol=1e-6)
    assert layer.kernel_quantizer is None


def test_dense_gradient_reaches_latent_kernel_unscaled():
    layer = BinaryDense(2, use_bias=True)
    x = tf.constant([[1.0, -2.0, 3.0]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x))
    grad_kernel, grad_bias = tape.gradient(loss, [layer.kernel, layer.bias])
    # d(sum(x @ W_hat))/dW_hat = x^T 1; the STE passes it unchanged.
    np.testing.assert_array_equal(grad_kernel.numpy(), np.repeat(x.numpy().T, 2, axis=1))
    np.testing.assert_array_equal(grad_bias.numpy(), [1.0, 1.0])


def test_binary_activation_input_quantizer():
    layer = BinaryDense(1, scale="none", input_quantizer="approx_sign")
    layer.build((None, 2))
    layer.kernel.assign([[1.0], [1.0]])
    assert layer(np.array([[0.3, -0.2]], np.float32)).numpy().tolist() == [[0.0]]
    assert layer(np.array([[0.3, 0.0]], np.float32)).numpy().tolist() == [[2.0]]


def test_config_round_trip():
    layer = BinaryConv2D(8, 3, scale="mean_abs", gradient="magnitude_aware",
                         input_quantizer="ste_sign", strides=2)
    clone = BinaryConv2D.from_config(layer.get_config())
    assert (clone.scale, clone.gradient, clone.strides) == ("mean_abs", "magnitude_aware", (2, 2))
    assert type(clone.input_quantizer).__name__ == "SteSign"
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, BinaryConv2D) and restored.binary
