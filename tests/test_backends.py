"""The layers, quantizers and recipe on Keras' JAX backend (in a subprocess:
a process has one backend): the same values and gradients as TensorFlow,
training works, and a JAX-trained .keras file loads and exports here."""

import pathlib
import sys

import numpy as np
import pytest
import tensorflow as tf

import keras_onebit as kob
from keras_onebit import export
from keras_onebit.export import report
from tests.conftest import run_on_jax

pytest.importorskip("jax")
PROBE = pathlib.Path(__file__).with_name("backend_probe.py")
sys.path.insert(0, str(PROBE.parent))
import backend_probe  # noqa: E402


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory, shared):
    out = tmp_path_factory.mktemp("jax")
    return out, run_on_jax(PROBE, out, shared / "data/mnist.npz", "probe.npz")


@pytest.mark.parametrize("name", sorted(backend_probe.QUANTIZERS))
def test_quantizer_values_and_gradients_equal_tensorflow(jax_run, name):
    quantizer, x = backend_probe.QUANTIZERS[name]
    g = np.resize(backend_probe.G.reshape(-1), x.shape).astype(np.float32)
    v = tf.Variable(x)
    with tf.GradientTape() as tape:
        y = quantizer(v)
        loss = tf.reduce_sum(y * g)
    _, probe = jax_run
    np.testing.assert_array_equal(probe[f"{name}/value"], y.numpy())
    np.testing.assert_array_equal(probe[f"{name}/grad"], tape.gradient(loss, v).numpy())


def test_forward_kernels_are_exactly_plus_minus_alpha_on_jax(jax_run):
    _, probe = jax_run
    kernels = {k: v for k, v in probe.items() if k.startswith("kernel/")}
    assert len(kernels) == 8  # WRN-8-1: 8 one-bit convs
    for value in kernels.values():
        alpha = kob.quantizers.he_scale(value.shape)
        assert set(np.unique(np.abs(value)).tolist()) == {np.float32(alpha)}


def test_fit_on_jax_lowers_the_loss(jax_run):
    _, probe = jax_run
    losses = probe["losses"]
    assert np.all(np.isfinite(losses)) and np.all(np.diff(losses) < 0)
    assert losses[-1] < 0.85 * losses[0]  # measured: 2.12 -> 1.66


def test_jax_model_loads_on_tensorflow_and_exports(jax_run, mnist, tmp_path):
    import keras

    out, probe = jax_run
    model = keras.models.load_model(out / "model.keras")
    images = mnist["x_test"][:64, ..., None].astype("float32")
    keras_out = model.predict(images, verbose=0)
    np.testing.assert_allclose(keras_out, probe["predictions"], atol=1e-5)
    archive = export.save_packed(model, tmp_path / "m.onebit")
    np.testing.assert_allclose(export.load_packed(archive).predict(images, verbose=0),
                               keras_out, atol=1e-6)
    calibration = mnist["x_train"][:200, ..., None].astype("float32")
    packed = report.litert_outputs(export.convert(model, "packed"), images)
    np.testing.assert_allclose(packed, keras_out, atol=1e-5)
    int8 = report.litert_outputs(export.convert(model, "int8", calibration), images)
    agree = np.mean(np.argmax(int8, -1) == np.argmax(keras_out, -1))
    assert agree >= 0.95, agree
