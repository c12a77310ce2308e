"""The layers, quantizers and recipe on Keras' JAX and PyTorch backends (each in
a subprocess: a process has one backend): the same values and gradients as
TensorFlow (quantizers exactly; switchable layers and the distillation loss to
float tolerance), the same summary counts and hub predictions, training works,
and a .keras file trained there loads and exports here."""

import pathlib
import sys

import numpy as np
import pytest
import tensorflow as tf

import keras_onebit as kob
from keras_onebit import export
from keras_onebit.export import bitpack, report
from tests.conftest import run_on_backend

PROBE = pathlib.Path(__file__).with_name("backend_probe.py")
sys.path.insert(0, str(PROBE.parent))
import backend_probe  # noqa: E402


@pytest.fixture(scope="module", params=["jax", "torch"])
def backend_run(request, tmp_path_factory, shared):
    """(folder, probe arrays) of backend_probe.py run on the backend."""
    pytest.importorskip(request.param)
    out = tmp_path_factory.mktemp(request.param)
    return out, run_on_backend(request.param, PROBE, out, shared / "data/mnist.npz", "probe.npz")


@pytest.mark.parametrize("name", sorted(backend_probe.QUANTIZERS))
def test_quantizer_values_and_gradients_equal_tensorflow(backend_run, name):
    quantizer, x = backend_probe.QUANTIZERS[name]
    g = np.resize(backend_probe.G.reshape(-1), x.shape).astype(np.float32)
    v = tf.Variable(x)
    with tf.GradientTape() as tape:
        y = quantizer(v)
        loss = tf.reduce_sum(y * g)
    _, probe = backend_run
    np.testing.assert_array_equal(probe[f"{name}/value"], y.numpy())
    np.testing.assert_array_equal(probe[f"{name}/grad"], tape.gradient(loss, v).numpy())


@pytest.mark.parametrize("name", sorted(backend_probe.FUNCTIONS))
def test_switchable_layers_and_distillation_equal_tensorflow(backend_run, name):
    function, x = backend_probe.FUNCTIONS[name]
    v = tf.Variable(x)
    with tf.GradientTape() as tape:
        y = function(v)
        loss = tf.reduce_sum(y * backend_probe.weights_of(tuple(y.shape)))
    _, probe = backend_run
    tolerance = {"rtol": 1e-5, "atol": 1e-5}
    np.testing.assert_allclose(probe[f"{name}/value"], y.numpy(), **tolerance)
    np.testing.assert_allclose(probe[f"{name}/grad"], tape.gradient(loss, v).numpy(), **tolerance)


def test_the_switch_changes_the_layer_there(backend_run):
    _, probe = backend_run
    off, on = probe["switchable_float/value"], probe["switchable_binary/value"]
    assert np.abs(off - on).max() > 0.1


def test_summary_counts_equal_tensorflow(backend_run):
    _, probe = backend_run
    there = {k.split("/", 1)[1]: v for k, v in probe.items() if k.startswith("summary/")}
    here = backend_probe.summary_totals()
    assert there.keys() == here.keys() and len(here) >= 5
    assert {k: float(v) for k, v in there.items()} == {k: float(v) for k, v in here.items()}


def test_hub_default_model_predicts_as_on_tensorflow(backend_run, shared):
    out, probe = backend_run
    here = backend_probe.hub_predictions(shared / "data" / "cifar10.npz")
    there = probe["hub/predictions"]
    if out.name.startswith("torch"):  # its shortcut's "same" average pool (keras#18452, above)
        assert 1e-4 < np.abs(there - here).max() < 0.05  # measured: 0.008
        assert np.mean(there.argmax(1) == here.argmax(1)) >= 15 / 16
    else:
        np.testing.assert_allclose(there, here, atol=1e-4)
        np.testing.assert_array_equal(there.argmax(1), here.argmax(1))


def test_forward_kernels_are_exactly_plus_minus_alpha(backend_run):
    _, probe = backend_run
    kernels = {k: v for k, v in probe.items() if k.startswith("kernel/")}
    assert len(kernels) == 8  # WRN-8-1: 8 one-bit convs
    for value in kernels.values():
        alpha = kob.quantizers.he_scale(value.shape)
        assert set(np.unique(np.abs(value)).tolist()) == {np.float32(alpha)}


def test_fit_lowers_the_loss(backend_run):
    _, probe = backend_run
    losses = probe["losses"]
    assert np.all(np.isfinite(losses)) and np.all(np.diff(losses) < 0)
    # 3 epochs of 15 steps; measured: 2.30 -> 2.10 -> 1.99 (JAX), 2.30 -> 2.10 -> 1.98 (torch)
    assert losses[-1] < 0.9 * losses[0]


def test_model_trained_there_loads_on_tensorflow_and_exports(backend_run, mnist, tmp_path):
    import keras

    out, probe = backend_run
    model = keras.models.load_model(out / "model.keras")
    images = mnist["x_test"][:64, ..., None].astype("float32")
    keras_out = model.predict(images, verbose=0)
    if out.name.startswith("torch"):
        # Keras 3.15.1's torch AveragePooling2D(padding="same") averages the windows that
        # overhang the bottom / right edge differently from TensorFlow and JAX
        # (keras-team/keras#18452): WRN's downsampling shortcut. Measured: max 0.0077.
        assert np.abs(keras_out - probe["predictions"]).max() < 0.05
        agree = np.mean(keras_out.argmax(-1) == probe["predictions"].argmax(-1))
        assert agree >= 0.95, agree  # measured: 63 or 64 of 64 (near-tied images)
    else:
        np.testing.assert_allclose(keras_out, probe["predictions"], atol=1e-5)
    archive = export.save_packed(model, tmp_path / "m.onebit")
    np.testing.assert_allclose(export.load_packed(archive).predict(images, verbose=0),
                               keras_out, atol=1e-6)
    calibration = mnist["x_train"][:200, ..., None].astype("float32")
    files = {fmt: export.convert(model, fmt, calibration) for fmt in ("float", "int8", "int4")}
    for fmt, plain in bitpack.BASE.items():  # as convert does, without converting again
        files[fmt] = bitpack.pack_filters(files[plain])[0]
    for fmt in ("float", "packed"):
        np.testing.assert_allclose(report.litert_outputs(files[fmt], images), keras_out,
                                   atol=1e-5)
    builtin = {fmt: report.litert_outputs(files[fmt], images, xnnpack=False)
               for fmt in ("int8", "packed_int8", "int4")}
    np.testing.assert_array_equal(builtin["packed_int8"], builtin["int8"])
    for fmt in ("int8", "int4"):
        agree = np.mean(np.argmax(builtin[fmt], -1) == np.argmax(keras_out, -1))
        assert agree >= 0.9, (fmt, agree)  # measured: 0.95-1.0
    from keras_onebit.export import micro

    tflm = micro.run(micro.compress(files["int8"]), images[:2], 1 << 20)
    np.testing.assert_array_equal(tflm, micro.run(files["int8"], images[:2], 1 << 20))


def test_stochastic_storage_runs_on_jax_and_is_refused_on_torch_in_one_line(backend_run):
    out, probe = backend_run
    outcome = str(probe["storage"])
    if out.name.startswith("jax"):
        assert outcome == "trained"
    else:
        assert outcome.startswith("BackendError: Stochastic one-bit input storage runs on the "
                                  "TensorFlow and JAX backends"), outcome
        assert "\n" not in outcome


def test_shortcut_pools_against_tensorflow(backend_run):
    """MatConvNet's pool (ours) is the same on every backend; Keras' "same" average pool
    differs on torch in the last row and column only (keras-team/keras#18452). When a Keras
    upgrade fixes it, this fails: then drop the caveat in README's backends section."""
    out, probe = backend_run
    symmetric, same = backend_probe.pools()  # here: TensorFlow
    np.testing.assert_allclose(probe["pool/symmetric"], symmetric, atol=1e-6)
    differs = np.abs(probe["pool/same"] - same).max(axis=(0, 3)) > 1e-5
    if out.name.startswith("torch"):
        assert differs[-1, :].all() and differs[:, -1].all() and not differs[:-1, :-1].any()
    else:
        assert not differs.any()
