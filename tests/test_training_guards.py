"""Training refuses what would do nothing, hang, diverge unseen or lose a run:
flags without effect, zero steps per epoch, a non-finite or exploding loss, a finished run
replaced without --overwrite."""

import os
import subprocess
import sys

import pytest

from keras_onebit.errors import ConfigError
from keras_onebit.training import loop
from keras_onebit.training.loop import RunConfig, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_train(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "keras_onebit", "train", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)


def one_line(proc):
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    (line,) = proc.stderr.strip().splitlines()
    return line


def test_flags_without_effect_and_a_held_run_are_refused_before_work(tmp_path):
    for args, text in (
            (["--distill_from_epoch", "2"], "--distill_from_epoch has no effect without "
                                            "--teacher"),
            (["--storage_scale", "p99"], "--storage_scale has no effect without --input_storage"),
            (["--iterative_order", "reverse"], "--iterative_order has no effect"),
            (["--hub_default"], "--hub_default has no effect without --hub"),
            (["--resume", "--overwrite"], "give one of the two")):
        assert text in one_line(run_train(*args, "--out", str(tmp_path / "x"))), args
    run = tmp_path / "run"
    run.mkdir()
    (run / loop.STATE).write_text('{"epochs_done": 3}')
    line = one_line(run_train("--out", str(run)))
    assert f"--out {run} holds a run (state.json)" in line and "--overwrite" in line
    assert (run / loop.STATE).read_text() == '{"epochs_done": 3}'


def test_zero_steps_per_epoch_is_refused(tmp_path):
    config = RunConfig(dataset="mnist", model="wrn_20_1", epochs=1, batch_size=125,
                       train_limit=100, out_dir=str(tmp_path / "run"), verbose=0)
    with pytest.raises(ConfigError, match="batch_size 125 is larger than the 100 training"):
        train(config)


def test_a_diverging_run_stops_with_one_line(tmp_path):
    out = tmp_path / "run"
    config = RunConfig(dataset="mnist", model="wrn_20_1", epochs=2, batch_size=50,
                       train_limit=200, out_dir=str(out), verbose=0, first_cycle=1,
                       binary=False, weight_decay=0.0, max_lr=1e38)
    with pytest.raises(loop.TrainingDiverged) as caught:
        train(config)
    message = str(caught.value)
    assert "\n" not in message and "in epoch 1 (step" in message and "learning rate" in message
    assert loop.epochs_done(out) == 0 and not (out / "final.keras").exists()


def guard_on_model(learning_rate=0.5):
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse")
    guard = loop.StopOnDivergence()
    guard.set_model(model)
    guard.on_train_begin()
    return guard


def test_a_finite_loss_that_rises_100x_stops_the_run():
    guard = guard_on_model()
    guard.on_epoch_begin(2)
    guard.on_train_batch_end(0, {"loss": 2.3})
    guard.on_train_batch_end(1, {"loss": 229.0})  # under 100 x 2.3: goes on
    with pytest.raises(loop.TrainingDiverged) as caught:
        guard.on_train_batch_end(2, {"loss": 231.0})
    message = str(caught.value)
    assert "\n" not in message and "the loss rose to 231, past 230 (100x its first" in message
    assert "in epoch 3 (step 3, learning rate 0.5)" in message
    # a new fit call (a resumed run, the switch to distillation) measures from its own start
    guard.on_train_begin()
    guard.on_train_batch_end(0, {"loss": 0.01})  # below 1: the limit is 100
    guard.on_train_batch_end(1, {"loss": 99.0})
    with pytest.raises(loop.TrainingDiverged, match="rose to 101, past 100 "):
        guard.on_train_batch_end(2, {"loss": 101.0})


def test_a_non_finite_first_loss_stops_the_run():
    guard = guard_on_model()
    with pytest.raises(loop.TrainingDiverged, match="the loss became nan in epoch 1 .step 1,"):
        guard.on_train_batch_end(0, {"loss": float("nan")})
