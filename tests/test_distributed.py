"""Mirrored training on two logical CPU devices, and multi-worker training
with two local worker processes: every replica ends with identical weights."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np

import keras_onebit  # registers the layers for load_model

TRAIN_ARGS = ["--model", "wrn_20_1", "--dataset", "cifar10", "--epochs", "1",
              "--batch_size", "40", "--train_limit", "160", "--verbose", "0"]

MIRRORED = textwrap.dedent("""
    import sys, numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from keras_onebit.training.loop import RunConfig, train
    config = RunConfig(model="wrn_20_1", epochs=1, batch_size=40, train_limit=160,
                       strategy="mirrored", devices=("/cpu:0", "/cpu:1"),
                       out_dir=sys.argv[1], verbose=0)
    model, _ = train(config)
    replicas = 0
    # BN moving statistics are per-replica (sync on read); trained weights are mirrored
    for v in model.trainable_weights:
        values = [np.asarray(x) for x in v.value.values]
        assert len(values) == 2, v.path
        assert all(np.array_equal(values[0], x) for x in values[1:]), v.path
        replicas = len(values)
    print("REPLICAS", replicas, "STEPS", int(model.optimizer.iterations.numpy()))
""")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(**extra):
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def test_mirrored_two_logical_cpus(tmp_path):
    out = subprocess.run([sys.executable, "-c", MIRRORED, str(tmp_path / "run")],
                         capture_output=True, text=True, env=env(), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "REPLICAS 2 STEPS 4" in out.stdout


def test_multi_worker_two_local_processes(tmp_path):
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    run = tmp_path / "run"
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "keras_onebit", "train", *TRAIN_ARGS,
             "--strategy", "multi_worker", "--out", str(run)],
            env=env(TF_CONFIG=json.dumps({"cluster": cluster,
                                          "task": {"type": "worker", "index": i}})),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=400)
        assert worker.returncode == 0, err[-3000:]
    chief = keras.models.load_model(run / "checkpoint.keras")
    other = keras.models.load_model(run / "worker_1" / "checkpoint.keras")
    assert int(chief.optimizer.iterations.numpy()) == 4
    # trained weights are all-reduced; BN moving statistics stay per worker
    for a, b in zip(chief.trainable_weights, other.trainable_weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    stem = chief.get_layer("stem_conv").kernel.numpy()
    assert not np.array_equal(stem, keras_onebit.models.wrn_20_1().get_layer("stem_conv").kernel)
    assert json.loads((run / "state.json").read_text())["epochs_done"] == 1
