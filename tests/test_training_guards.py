"""Training refuses what would do nothing, hang or diverge unseen: zero steps per epoch,
a non-finite or exploding loss. (Flags without effect and a run folder replaced without
--overwrite are refused before any work: tests/test_cli.py runs those command lines.)"""

import pytest

from keras_onebit.errors import ConfigError
from keras_onebit.training import loop
from keras_onebit.training.loop import RunConfig, train


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
