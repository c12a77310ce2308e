import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_onebit import data as datasets
from keras_onebit.training import (
    WarmRestartCosine,
    ZeroMomentumAtRestart,
    augment,
    cutout,
    pad_crop,
    recompute_bn_statistics,
    restart_epochs,
    train_dataset,
)
from keras_onebit.training.loop import (
    RunConfig,
    evaluate,
    first_test_images,
    fit,
    prepare,
    train,
)


def test_restart_epochs_of_the_paper():
    assert restart_epochs() == [2, 6, 14, 30, 62, 126, 254]


@pytest.mark.parametrize("epoch", [0, 0.5, 1, 1.999, 2, 3, 5.9, 6, 10, 14, 29.5, 30, 100, 253])
def test_schedule_equals_formula(epoch):
    spe, hi, lo = 400, 0.1, 1e-5
    step = int(round(epoch * spe))
    ends = [0] + restart_epochs(count=8)
    k = max(i for i, e in enumerate(ends) if e * spe <= step)
    t, length = step - ends[k] * spe, (ends[k + 1] - ends[k]) * spe
    expected = lo + (hi - lo) * 0.5 * (1 + math.cos(math.pi * t / length))
    assert float(WarmRestartCosine(spe, hi, lo)(step)) == pytest.approx(expected, rel=1e-6)


def test_schedule_restarts_exactly_at_cycle_ends():
    schedule = WarmRestartCosine(390)
    for end in restart_epochs():
        assert float(schedule(end * 390)) == pytest.approx(0.1)
        assert float(schedule(end * 390 - 1)) < 1e-4
    config = keras.saving.serialize_keras_object(schedule)
    assert keras.saving.deserialize_keras_object(config).get_config() == schedule.get_config()


def test_zero_momentum_at_restart():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "mse")
    model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=1, verbose=0)
    assert any(np.abs(v.numpy()).sum() > 0 for v in model.optimizer.momentums)
    callback = ZeroMomentumAtRestart()
    callback.set_model(model)
    callback.on_epoch_begin(1)
    assert any(np.abs(v.numpy()).sum() > 0 for v in model.optimizer.momentums)
    callback.on_epoch_begin(2)
    assert all(not v.numpy().any() for v in model.optimizer.momentums)


def marked_images(n=16):
    """Images of -1, so every pixel the augmentation writes is visible."""
    return tf.fill([n, 32, 32, 3], -1.0)


def test_augmentation_shapes_dtypes_and_seeded():
    images = tf.random.uniform([16, 32, 32, 3], 0, 255)
    a, b = augment(images, [3, 4], True), augment(images, [3, 4], True)
    assert a.shape == images.shape and a.dtype == tf.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, augment(images, [3, 5], True))


def test_crop_padding_is_random_integers_in_0_255():
    out = pad_crop(marked_images(64), tf.constant([1, 2], tf.int64)).numpy()
    filled = out[out != -1]
    assert filled.size > 0
    assert filled.min() >= 0 and filled.max() <= 255 and np.all(filled == np.round(filled))
    assert len(np.unique(filled)) > 200  # uniform noise, not a constant fill
    # each crop is a window of the 40x40 canvas: the image keeps >= 28 x 28 pixels
    kept = (out == -1).all(axis=3).sum(axis=(1, 2))
    assert kept.min() >= 28 * 28 and kept.max() == 32 * 32


def test_cutout_patch_is_at_most_18x18_random_pixels():
    out = cutout(marked_images(64), tf.constant([7, 8], tf.int64)).numpy()
    patch = out[..., 0] != -1
    sizes = patch.sum(axis=(1, 2))
    assert sizes.max() <= 18 * 18 and (sizes == 18 * 18).any() and (sizes < 18 * 18).any()
    values = out[out != -1]
    assert values.min() >= 0 and values.max() <= 255 and np.all(values == np.round(values))


def test_train_dataset_is_reproducible_and_resumable():
    x = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3)).astype(np.uint8)
    y = np.arange(40)
    first = [b for b in train_dataset(x, y, 10, seed=5).take(3)]
    again = [b for b in train_dataset(x, y, 10, seed=5).take(3)]
    for (xa, ya), (xb, yb) in zip(first, again, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert first[0][0].dtype == tf.float32 and first[0][0].shape == (10, 32, 32, 3)


def test_recompute_bn_statistics_is_the_mean_of_batch_means():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(inputs))
    batches = [np.random.default_rng(i).normal(i, 1, (8, 4)).astype(np.float32) for i in range(3)]
    ds = tf.data.Dataset.from_tensor_slices((np.stack(batches), np.zeros(3)))
    recompute_bn_statistics(model, ds, 3)
    expected = np.mean([b.mean(axis=0) for b in batches], axis=0)
    np.testing.assert_allclose(model.get_layer("bn").moving_mean.numpy(), expected, rtol=1e-5)
    assert model.get_layer("bn").momentum == 0.99


def test_missing_and_malformed_data_are_named(tmp_path):
    with pytest.raises(datasets.DataError, match="No cifar10 data found in .*cifar10.npz"):
        datasets.load_dataset("cifar10", data_dir=tmp_path)
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(datasets.DataError, match="mnist.npz: missing arrays"):
        datasets.load_dataset("mnist", data_dir=tmp_path)
    with pytest.raises(datasets.DataError, match="Unknown dataset 'imagenet'"):
        datasets.load_dataset("imagenet")


def test_resumed_run_continues_at_same_step_and_rate(tmp_path):
    config = RunConfig(model="wrn_20_1", dataset="cifar10", epochs=2, batch_size=50,
                       train_limit=200, test_limit=600, out_dir=str(tmp_path / "run"),
                       verbose=0, first_cycle=1)
    _, model = fit(config, resume=False)  # the first part needs no final evaluation
    assert int(model.optimizer.iterations.numpy()) == 8
    config.epochs = 3
    resumed, metrics = train(config, resume=True)
    assert int(resumed.optimizer.iterations.numpy()) == 12
    schedule = WarmRestartCosine(4, first_cycle=1)
    assert float(resumed.optimizer.learning_rate) == pytest.approx(float(schedule(12)))
    log = (tmp_path / "run" / "log.csv").read_text().strip().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["0", "1", "2"]
    assert metrics["test_images"] == metrics["exact_test_images"] == 600  # --test_limit
    d = datasets.load_dataset("cifar10")
    pred = resumed.predict(d["x_test"][:600].astype("float32"), verbose=0).argmax(1)
    assert metrics["exact_test_accuracy"] == pytest.approx((pred == d["y_test"][:600]).mean())
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000


def test_mixed_bfloat16_run_ships_the_trained_weights_in_float32(tmp_path, capsys):
    config = RunConfig(model="wrn_20_1", dataset="cifar10", epochs=1, batch_size=50,
                       train_limit=100, test_limit=200, out_dir=str(tmp_path / "run"),
                       verbose=0, first_cycle=1, dtype_policy="mixed_bfloat16")
    model, metrics = train(config)
    assert keras.config.dtype_policy().name == "float32"
    checkpoint = keras.models.load_model(tmp_path / "run" / "checkpoint.keras")
    assert checkpoint.get_layer("stem_conv").dtype_policy.name == "mixed_bfloat16"
    final = keras.models.load_model(tmp_path / "run" / "final.keras")
    for shipped in (model, final):
        assert {layer.dtype_policy.name for layer in shipped.layers} == {"float32"}
        for a, b in zip(shipped.get_weights(), checkpoint.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    data = first_test_images(datasets.load_dataset("cifar10"), 200)
    assert evaluate(final, data)["exact_test_accuracy"] == metrics["exact_test_accuracy"]

    # Resumed in float32 (a machine without bfloat16 instructions): the checkpoint's model
    # rebuilt in float32 with its weights and optimizer state, then trained on.
    config.dtype_policy, config.epochs = "float32", 2
    capsys.readouterr()
    _, restored, _, start, _ = prepare(config, resume=True)
    assert "checkpoint computes in mixed_bfloat16; resumed in float32" in capsys.readouterr().out
    assert start == 1 and {layer.dtype_policy.name for layer in restored.layers} == {"float32"}
    for a, b in zip(restored.get_weights(), checkpoint.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    saved = [v.numpy() for v in checkpoint.optimizer.variables]
    assert int(saved[0]) == 2 and any(np.any(v != 0) for v in saved[1:])  # steps, momentum
    for a, b in zip(restored.optimizer.variables, saved, strict=True):
        np.testing.assert_array_equal(a.numpy(), b)
    _, resumed = fit(config, resume=True)
    assert int(resumed.optimizer.iterations.numpy()) == 4
    checkpoint = keras.models.load_model(tmp_path / "run" / "checkpoint.keras")
    assert {layer.dtype_policy.name for layer in checkpoint.layers} == {"float32"}


@pytest.mark.parametrize("steps_per_epoch", [390, 400, 469])
def test_schedule_equals_keras_cosine_decay_restarts(steps_per_epoch):
    ours = WarmRestartCosine(steps_per_epoch)
    theirs = keras.optimizers.schedules.CosineDecayRestarts(
        0.1, 2 * steps_per_epoch, t_mul=2.0, m_mul=1.0, alpha=1e-4)
    for step in range(0, 126 * steps_per_epoch, 997):
        assert abs(float(ours(step)) - float(theirs(step))) < 3e-8, step  # float32: a few ulps


def test_train_command_writes_a_hub_entry_that_loads_as_the_final_model(tmp_path):
    """`train --hub`: the entry holds the run's log and curves (shown in its
    card) and its packed weights give the final model's outputs."""
    import os
    import subprocess
    import sys

    import keras_onebit as kob
    from tests.conftest import ROOT

    run, hub_root = tmp_path / "run", tmp_path / "hub"
    hub_root.mkdir()
    args = ["--model", "wrn_20_1", "--epochs", "1", "--first_cycle", "1", "--batch_size", "50",
            "--train_limit", "100", "--test_limit", "200", "--threads", "1", "--verbose", "0",
            "--out", str(run),
            "--hub", str(hub_root), "--hub_notes", "a test run"]
    proc = subprocess.run([sys.executable, "-m", "keras_onebit", "train", *args], cwd=ROOT,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    entry = hub_root / "wrn_20_1-cifar10-1bit"
    assert f"hub entry: {entry}" in proc.stdout
    assert (entry / "log.csv").read_bytes() == (run / "log.csv").read_bytes()
    assert (entry / "curves.png").read_bytes() == (run / "curves.png").read_bytes()
    card = (entry / "MODEL_CARD.md").read_text()
    assert "![training curves](curves.png)" in card and card.rstrip().endswith("a test run")
    assert "(standard error" in card and "200 images)" in card  # measured on --test_limit 200
    assert "eval --limit 200 --model wrn_20_1-cifar10-1bit --dataset cifar10" in card
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    final = keras.models.load_model(run / "final.keras")
    # hub.load refuses a folder named as a project id that holds other weights: read the archive
    weights = entry / "weights.onebit"
    assert kob.hub.read_config(entry)["weights_sha256"] == kob.hub.sha256_file(weights)
    np.testing.assert_allclose(kob.export.load_packed(weights).predict(images, verbose=0),
                               final.predict(images, verbose=0), rtol=1e-5, atol=1e-6)
