import math

import numpy as np
import pytest
import tensorflow as tf

from keras_onebit import quantizers
from keras_onebit.quantizers import ApproxSign, SignWeight, SteSign

W = np.array([[-1.5, -1.0, -0.3], [0.0, 0.4, 2.0]], dtype=np.float32)  # IO: fan_in 2
G = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=np.float32)


def forward_and_grad(quantizer, w=W, g=G):
    w = tf.Variable(w)
    with tf.GradientTape() as tape:
        y = quantizer(w)
        loss = tf.reduce_sum(y * g)
    return y.numpy(), tape.gradient(loss, w).numpy()


def test_sign_of_zero_is_plus_one():
    assert quantizers.sign(tf.constant([0.0, -0.0, -1e-30, 1e-30])).numpy().tolist() == [
        1.0, 1.0, -1.0, 1.0]


def test_he_forward_is_alpha_sign_w():
    alpha = math.sqrt(2 / 2)
    y, _ = forward_and_grad(SignWeight())
    np.testing.assert_array_equal(y, alpha * np.where(W >= 0, 1.0, -1.0).astype(np.float32))


@pytest.mark.parametrize(
    "shape, alpha",
    [((3, 3, 3, 48), 0.27217), ((3, 3, 160, 160), 0.037268), ((1, 1, 640, 10), 0.055902)],
)
def test_he_scale_values_of_spec(shape, alpha):
    assert quantizers.he_scale(shape) == pytest.approx(alpha, abs=5e-6)


def test_ste_gradient_is_upstream_unscaled_unclipped():
    _, grad = forward_and_grad(SignWeight(gradient="ste"))
    np.testing.assert_array_equal(grad, G)


def test_clipped_gradient_masks_outside_unit_interval():
    _, grad = forward_and_grad(SignWeight(gradient="clipped"))
    np.testing.assert_array_equal(grad, G * (np.abs(W) <= 1))


def test_magnitude_aware_gradient_with_mean_abs_scale():
    y, grad = forward_and_grad(SignWeight(scale="mean_abs", gradient="magnitude_aware"))
    alpha = np.abs(W).mean(axis=0)  # per output channel
    np.testing.assert_allclose(y, alpha * np.where(W >= 0, 1, -1), rtol=1e-6)
    np.testing.assert_allclose(grad, alpha * G * (np.abs(W) <= 1), rtol=1e-6)


def test_float_and_none_scales():
    y, _ = forward_and_grad(SignWeight(scale=0.5))
    assert sorted(np.unique(y)) == [-0.5, 0.5]
    y, _ = forward_and_grad(SignWeight(scale="none"))
    assert sorted(np.unique(y)) == [-1.0, 1.0]


def test_unknown_options_are_named():
    with pytest.raises(ValueError, match="scale 'max'"):
        SignWeight(scale="max")
    with pytest.raises(ValueError, match="gradient 'identity'"):
        SignWeight(gradient="identity")
    with pytest.raises(ValueError, match="quantizer 'relu'"):
        quantizers.get("relu")


def test_approx_sign_gradient():
    x = np.array([-2.0, -1.0, -0.5, 0.0, 0.25, 0.75, 1.0, 3.0], dtype=np.float32)
    y, grad = forward_and_grad(ApproxSign(), x, np.ones_like(x))
    np.testing.assert_array_equal(y, [-1, -1, -1, 1, 1, 1, 1, 1])
    expected = [0.0, 0.0, 1.0, 2.0, 1.5, 0.5, 0.0, 0.0]
    np.testing.assert_allclose(grad, expected, rtol=1e-6)


def test_ste_sign_gradient():
    x = np.array([-2.0, -1.0, 0.0, 0.5, 1.5], dtype=np.float32)
    _, grad = forward_and_grad(SteSign(), x, np.full_like(x, 3.0))
    np.testing.assert_array_equal(grad, [0, 3, 3, 3, 0])
