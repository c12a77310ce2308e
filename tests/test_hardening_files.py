"""Every file the library reads goes through one gate (keras_onebit.fileio): a path
that is not a regular file (a device such as /dev/zero behind a symlink, a pipe, a
folder) is one line of the library's error, before a byte is read."""

import os
import pathlib
import subprocess
import sys

import pytest

import keras_onebit as kob
from keras_onebit import data as datasets
from keras_onebit import fileio, hub
from keras_onebit.errors import ConfigError, Error
from keras_onebit.export import load_packed
from keras_onebit.training import loop

DEVICE = pathlib.Path("/dev/zero")
pytestmark = pytest.mark.skipif(not DEVICE.exists(), reason="needs /dev/zero")


@pytest.fixture
def device(tmp_path):
    """A symlink to /dev/zero (endless zeros) under an honest-looking name."""
    def make(name):
        link = tmp_path / name
        link.symlink_to(DEVICE)
        return link
    make.root = tmp_path
    return make


def refused(call, *texts, error=Error):
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and all(text in message for text in texts), message


def test_gate_refuses_devices_folders_missing_and_large(tmp_path):
    refused(lambda: fileio.regular_file(DEVICE, "a file", ConfigError), "not a regular file")
    refused(lambda: fileio.regular_file(tmp_path, "a file", ConfigError), "is a folder")
    refused(lambda: fileio.regular_file(tmp_path / "no", "a file", ConfigError), "no such file")
    os.mkfifo(tmp_path / "pipe")
    refused(lambda: fileio.regular_file(tmp_path / "pipe", "a file", ConfigError),
            "not a regular file")
    (tmp_path / "big").write_bytes(b"x" * 11)
    refused(lambda: fileio.regular_file(tmp_path / "big", "a file", ConfigError, 10),
            "11 bytes", "larger than the 10 bytes")
    assert fileio.regular_file(tmp_path / "big", "a file", ConfigError, 11).name == "big"


def test_weights_behind_a_device_are_refused_everywhere(device):
    weights = device("weights.onebit")
    refused(lambda: hub.load(weights), "not a regular file", error=hub.HubError)
    refused(lambda: load_packed(weights), "not a regular file")
    refused(lambda: kob.models.wrn_20_1(weights=weights), "not a regular file")
    refused(lambda: hub.load(device("weights.mat")), "not a regular file")
    refused(lambda: hub.sha256_file(device("w.bin")), "not a regular file")


def test_data_teacher_and_run_files_behind_a_device_are_refused(device, tmp_path):
    device("cifar10.npz")
    refused(lambda: datasets.load_dataset("cifar10", data_dir=tmp_path), "not a regular file",
            error=datasets.DataError)
    refused(lambda: loop.load_teacher(device("t.npy"), (10,), 10), "not a regular file",
            error=ConfigError)
    run = tmp_path / "run"
    run.mkdir()
    (run / loop.STATE).symlink_to(DEVICE)
    refused(lambda: loop.epochs_done(run), "not a regular file", error=ConfigError)


def test_cli_refuses_a_device_as_model_or_weights(device):
    cases = (["eval", "--model", str(device("m.keras"))],
             ["export", "--weights", str(device("w.keras")), "--out", str(device.root / "o")],
             ["eval", "--model", str(device("m.onebit"))])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for args in cases:
        proc = subprocess.run([sys.executable, "-m", "keras_onebit", *args], env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, proc.stderr[-2000:]
        (line,) = proc.stderr.strip().splitlines()
        assert "not a regular file" in line, line
