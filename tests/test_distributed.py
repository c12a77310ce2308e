"""Mirrored training on two logical CPU devices, and multi-worker training
with two local worker processes: every replica ends with identical weights.
On JAX, keras.distribution.DataParallel over two host CPU devices trains what
one device trains with the same global batch."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_onebit  # registers the layers for load_model

TRAIN_ARGS = ["--model", "wrn_20_1", "--dataset", "cifar10", "--epochs", "1",
              "--batch_size", "40", "--train_limit", "160", "--test_limit", "200",
              "--verbose", "0"]

MIRRORED = textwrap.dedent("""
    import sys, numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from keras_onebit.training.loop import RunConfig, fit
    config = RunConfig(model="wrn_20_1", epochs=1, batch_size=40, train_limit=160,
                       test_limit=200, strategy="mirrored", devices=("/cpu:0", "/cpu:1"),
                       out_dir=sys.argv[1], verbose=0)
    _, model = fit(config, resume=False)  # fit: no final evaluation of 10,000 images
    replicas = 0
    # BN moving statistics are per-replica (sync on read); trained weights are mirrored
    for v in model.trainable_weights:
        values = [np.asarray(x) for x in v.value.values]
        assert len(values) == 2, v.path
        assert all(np.array_equal(values[0], x) for x in values[1:]), v.path
        replicas = len(values)
    print("REPLICAS", replicas, "STEPS", int(model.optimizer.iterations.numpy()))
""")


DATA_PARALLEL = textwrap.dedent("""
    import sys, numpy as np, keras
    from keras_onebit.training.loop import RunConfig, fit
    assert len(keras.distribution.list_devices()) == 2, keras.distribution.list_devices()

    def run(strategy, out):
        keras.utils.set_random_seed(0)
        config = RunConfig(model="wrn_20_1", epochs=1, batch_size=40, train_limit=40,
                           test_limit=200, strategy=strategy, out_dir=out, verbose=0)
        _, model = fit(config, resume=False)  # no final evaluation of 10,000 images
        return [np.asarray(w) for w in model.trainable_weights], int(model.optimizer.iterations)

    keras.utils.set_random_seed(0)
    start = [np.asarray(w) for w in keras_onebit.models.wrn_20_1().trainable_weights]
    parallel, steps = run("data_parallel", sys.argv[1] + "/parallel")
    keras.distribution.set_distribution(None)
    single, _ = run("default", sys.argv[1] + "/single")
    diff = max(float(np.abs(a - b).max()) for a, b in zip(parallel, single, strict=True))
    moved = max(float(np.abs(a - b).max()) for a, b in zip(parallel, start, strict=True))
    print("STEPS", steps, "DIFF", diff, "MOVED", moved)
""").replace("import sys,", "import keras_onebit, sys,")


def test_data_parallel_on_two_jax_cpu_devices_matches_one_device(tmp_path):
    pytest.importorskip("jax")
    out = subprocess.run([sys.executable, "-c", DATA_PARALLEL, str(tmp_path)],
                         capture_output=True, text=True, timeout=600,
                         env=env(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
                                 XLA_FLAGS="--xla_force_host_platform_device_count=2"))
    assert out.returncode == 0, out.stderr[-3000:]
    fields = out.stdout.split()
    steps, diff, moved = int(fields[1]), float(fields[3]), float(fields[5])
    assert steps == 1
    assert moved > 1e-3, moved  # the step did change the weights
    # One step of a global batch of 40 split over two devices gives the one-device weights
    # up to the order of the sums (measured: 3e-7 on a Xeon, 5.8e-6 on an AVX2-only EPYC, of a
    # step that moved the weights by 7.6e-3). The bound sits between that rounding and what a
    # wrong split gives: each device stepping on its own 20 images (one device, batch 20 vs
    # 40) differs by 1.1e-2, a summed instead of averaged gradient by about the step itself.
    # One device from starting weights nudged by one ulp each (np.nextafter) drifts as far:
    # 5.8e-6 after one step. Not tested further: after a second step the runs differ by up to
    # 2e-4, as that nudged run does (1.5e-5 one-bit, 4e-4 float): the steps amplify rounding.
    assert diff < 1e-4, diff


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


def test_data_parallel_on_tensorflow_is_refused_in_one_line():
    from keras_onebit.errors import ConfigError
    from keras_onebit.training import distribute

    with pytest.raises(ConfigError, match="JAX backend") as e:
        distribute.make_strategy("data_parallel")
    assert "\n" not in str(e.value) and "--strategy mirrored" in str(e.value)
