"""What a careless user meets gets one line of the library's error that names the
problem (issue 26's "poor" class): a model on the wrong data set, teacher files
of the wrong kind, a malformed hub metric, a Bi-Real input too small for it."""

import os
import subprocess
import sys

import numpy as np
import pytest

import keras_onebit as kob
from keras_onebit.cli import hub as hub_cli
from keras_onebit.errors import ConfigError
from keras_onebit.training import loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_model_on_another_data_sets_images_is_one_line():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "keras_onebit", "eval", "--model",
                           "wrn_20_1-cifar10-1bit", "--dataset", "mnist", "--limit", "10"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = proc.stderr.strip().splitlines()
    assert "takes inputs of shape (32, 32, 3), mnist's images are (28, 28, 1)" in line, line


def test_teacher_files_of_the_wrong_kind_are_named(tmp_path):
    np.savez(tmp_path / "t.npz", probs=np.full((4, 10), 0.1, np.float32))
    with pytest.raises(ConfigError, match="a .npz \\(zip\\) file, not a .npy file"):
        loop.load_teacher(tmp_path / "t.npz", (4,), 10)
    np.save(tmp_path / "ints.npy", np.zeros((4, 10), np.int64))
    with pytest.raises(ConfigError, match="must be a float array.*int64"):
        loop.load_teacher(tmp_path / "ints.npy", (4,), 10)


@pytest.mark.parametrize("metrics, shown", [
    ({"exact_test_accuracy": 0.913}, "91.3% exact"), ({"test_accuracy": 0.5}, "50.00%"),
    ({"exact_test_accuracy": "high"}, "(malformed)"), ({"test_accuracy": 7}, "(malformed)"),
    ("not a dict", "-"), (None, "-"), ({}, "-")])
def test_hub_list_shows_a_malformed_metric_as_such(metrics, shown):
    assert hub_cli._accuracy(metrics) == shown


def test_bireal_input_too_small_is_one_line():
    with pytest.raises(ConfigError, match="too small for this Bi-Real Net.*at least 32x32"):
        kob.models.bireal_18(input_shape=(16, 16, 3))


def test_a_twin_card_that_cannot_be_made_leaves_the_hub_as_it_was(tmp_path, monkeypatch):
    from keras_onebit import hub
    from keras_onebit.hub import entry

    twin_model = kob.models.wrn(8, 1, classes=10, binary=False)
    hub.save_entry(twin_model, tmp_path / "tiny-cifar10-float", "tiny-cifar10-float",
                   factory="wrn_20_1", factory_kwargs={}, dataset="cifar10")
    before = {p.name: p.read_bytes() for p in (tmp_path / "tiny-cifar10-float").iterdir()}
    real = entry.model_card

    def card(config, *args, **kwargs):
        if config["id"] == "tiny-cifar10-float":
            raise hub.HubError("the twin's card cannot be made")
        return real(config, *args, **kwargs)

    monkeypatch.setattr(entry, "model_card", card)
    with pytest.raises(hub.HubError, match="twin's card"):
        hub.save_entry(kob.models.wrn(8, 1, classes=10), tmp_path / "tiny-cifar10-1bit",
                       "tiny-cifar10-1bit", factory="wrn_20_1", factory_kwargs={},
                       dataset="cifar10")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-cifar10-float"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "tiny-cifar10-float").iterdir()} == before
