"""Quantizers as layer arguments (larq style): objects, registered names and
configs; a user's own quantizer trains, saves, summarizes and exports (a
SignWeight subclass) or is refused by name (anything else)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_onebit as kob
from keras_onebit import export, quantizers


@keras.saving.register_keras_serializable(package="tests")
class HalfScaleSign(quantizers.SignWeight):
    """A user's SignWeight: half the He scale, the clipped gradient."""

    def __init__(self, **kwargs):
        super().__init__(scale="he", gradient="clipped")

    def alpha(self, kernel):
        return 0.5 * super().alpha(kernel)

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="tests")
class Ternary(quantizers.Quantizer):
    """Not a sign quantizer: values in {-1, 0, +1}."""

    precision = 2

    def __call__(self, w):
        w = keras.ops.convert_to_tensor(w)
        return w + keras.ops.stop_gradient(keras.ops.round(keras.ops.clip(w, -1, 1)) - w)


def small_model(kernel_quantizer):
    inputs = keras.Input((6, 6, 2))
    x = kob.BinaryConv2D(4, 3, kernel_quantizer=kernel_quantizer, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = kob.BinaryDense(3, kernel_quantizer=kernel_quantizer, name="dense")(x)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("name, scale, gradient", [
    ("sign_weight", "he", "ste"), ("ste_sign", "none", "clipped"),
    ("magnitude_aware_sign", "mean_abs", "magnitude_aware")])
def test_kernel_quantizer_by_name(name, scale, gradient):
    layer = kob.BinaryConv2D(8, 3, kernel_quantizer=name)
    assert isinstance(layer.kernel_quantizer, quantizers.SignWeight)
    assert (layer.scale, layer.gradient, layer.precision) == (scale, gradient, 1)
    clone = kob.BinaryConv2D.from_config(layer.get_config())
    assert clone.kernel_quantizer.get_config() == layer.kernel_quantizer.get_config()


def test_kernel_quantizer_object_overrides_the_shorthands():
    layer = kob.BinaryDense(4, scale="he", kernel_quantizer=quantizers.SignWeight(0.25))
    layer.build((None, 3))
    assert np.unique(np.abs(keras.ops.convert_to_numpy(layer.forward_kernel()))).tolist() == [
        0.25]


def test_unknown_kernel_quantizer_and_float_layer_with_one_are_config_errors():
    with pytest.raises(kob.ConfigError, match="'no_such'"):
        kob.BinaryConv2D(8, 3, kernel_quantizer="no_such")
    with pytest.raises(kob.ConfigError, match="binary=False"):
        kob.BinaryConv2D(8, 3, binary=False, kernel_quantizer="ste_sign")


def test_custom_signweight_trains_round_trips_and_exports(tmp_path):
    keras.utils.set_random_seed(0)
    model = small_model(HalfScaleSign())
    kernel = model.get_layer("conv").kernel
    x = np.random.default_rng(0).normal(size=(16, 6, 6, 2)).astype("float32")
    y = np.arange(16) % 3
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x) ** 2)
    grad = tape.gradient(loss, kernel).numpy()
    assert np.all(grad[np.abs(kernel.numpy()) > 1] == 0)  # the clipped gradient is used
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, verbose=0)
    conv = model.get_layer("conv")
    alpha = 0.5 * kob.quantizers.he_scale(conv.kernel.shape)
    forward = keras.ops.convert_to_numpy(conv.forward_kernel())
    np.testing.assert_array_equal(np.abs(forward), np.float32(alpha))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.get_layer("conv").kernel_quantizer, HalfScaleSign)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert kob.summary(model, print_fn=lambda *a, **k: None)["binary_weights"] == 4 * 18 + 12
    packed = export.load_packed(export.save_packed(model, tmp_path / "m.onebit"))
    np.testing.assert_allclose(packed.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)


def test_non_sign_quantizer_trains_and_saves_but_export_refuses_it_by_name(tmp_path):
    model = small_model(Ternary())
    x = np.random.default_rng(1).normal(size=(8, 6, 6, 2)).astype("float32")
    model.compile("sgd", "mse")
    model.fit(x, np.zeros((8, 3)), epochs=1, verbose=0)
    model.save(tmp_path / "t.keras")
    loaded = keras.models.load_model(tmp_path / "t.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(kob.Error, match="'conv'.*Ternary"):
        export.save_packed(model, tmp_path / "t.onebit")
    assert not (tmp_path / "t.onebit").exists()


@keras.saving.register_keras_serializable(package="tests")
class ShiftedSign(quantizers.SignWeight):
    """A SignWeight subclass whose forward kernel is not alpha * sign(W)."""

    def __call__(self, kernel):
        return super().__call__(kernel) + 0.01

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="tests")
class RowMeanSign(quantizers.SignWeight):
    """A per-channel scale of the user's own: mean |W| of each output channel, doubled."""

    def __init__(self, **kwargs):
        super().__init__(scale="mean_abs", gradient="magnitude_aware")

    def alpha(self, kernel):
        return 2.0 * super().alpha(kernel)

    def get_config(self):
        return {}


def test_archive_refuses_a_quantizer_it_cannot_store(tmp_path):
    keras.utils.set_random_seed(0)
    model = small_model(ShiftedSign())
    with pytest.raises(export.ExportError, match="'conv'.*ShiftedSign.*other than alpha"):
        export.save_packed(model, tmp_path / "m.onebit")
    assert list(tmp_path.iterdir()) == []


def test_archive_of_a_per_channel_custom_scale_reloads_exactly(tmp_path):
    keras.utils.set_random_seed(0)
    model = small_model(RowMeanSign())
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 2)).astype("float32")
    export.save_packed(model, tmp_path / "m.onebit")
    loaded = export.load_packed(tmp_path / "m.onebit")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
