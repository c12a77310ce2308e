"""Keras's own layer test harness (`testing.TestCase.run_layer_test`: build,
call, serialization round trip, training step, mixed precision) passes for every
public layer of the library and each of its options, on TensorFlow here and on
JAX and PyTorch in child processes (a process has one Keras backend)."""

import os
import subprocess
import sys

import keras
import pytest
from keras.src import testing  # Keras's harness has no public path; tests only

import keras_onebit as kob

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONV_OPTIONS = [
    {}, {"binary": False}, {"scale": "mean_abs"}, {"scale": "none"}, {"scale": 0.25},
    {"gradient": "clipped"}, {"gradient": "magnitude_aware", "scale": "mean_abs"},
    {"input_quantizer": "approx_sign"}, {"input_quantizer": "ste_sign"},
    {"switchable": True}, {"kernel_quantizer": "magnitude_aware_sign"},
    {"use_bias": True, "activation": "relu"}, {"strides": 2, "padding": "same"},
    {"input_storage": "stochastic_1bit"},
]
TENSORFLOW_ONLY = ("input_storage",)  # stochastic storage: refused on torch; its JAX
# gradient is tested in tests/test_storage.py


def cases():
    """(name, layer class, init kwargs, input shape, output shape, seed generators)."""
    out = []
    for options in CONV_OPTIONS:
        name = ",".join(f"{k}={v}" for k, v in options.items()) or "defaults"
        seeds = 1 if "input_storage" in options else 0
        shape = (2, 3, 3, 4) if options.get("strides") == 2 else (2, 4, 4, 4)
        out.append((f"conv[{name}]", kob.BinaryConv2D, {"filters": 4, "kernel_size": 3,
                                                       **options}, (2, 6, 6, 3), shape, seeds))
        if "strides" not in options:
            out.append((f"dense[{name}]", kob.BinaryDense, {"units": 5, **{
                k: v for k, v in options.items() if k != "padding"}}, (2, 7), (2, 5), seeds))
    out.append(("zero_channels", kob.ZeroChannels, {"channels": 6}, (2, 4, 4, 3),
                (2, 4, 4, 6), 0))
    out.append(("shifted_relu", kob.layers.ShiftedReLU, {}, (2, 4, 4, 3), (2, 4, 4, 3), 0))
    return out


class Harness(testing.TestCase):
    def runTest(self):
        """unused: the cases are run one by one."""


def check(name, cls, kwargs, input_shape, output_shape, seeds):
    harness = Harness()
    harness.setUp()
    try:
        harness.run_layer_test(cls, init_kwargs=kwargs, input_shape=input_shape,
                               expected_output_shape=output_shape,
                               expected_num_seed_generators=seeds)
    finally:
        harness.tearDown()


def check_all():
    """Every case on the current backend; the names of those that ran."""
    ran = []
    for case in cases():
        if keras.backend.backend() != "tensorflow" and any(
                key in case[2] for key in TENSORFLOW_ONLY):
            continue
        check(*case)
        ran.append(case[0])
    return ran


@pytest.mark.parametrize("case", cases(), ids=lambda case: case[0])
def test_keras_layer_harness_on_tensorflow(case):
    check(*case)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_keras_layer_harness_on_another_backend(backend):
    pytest.importorskip(backend)
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu",
           "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
    script = "from tests.test_layer_harness import check_all; print(len(check_all()))"
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = sum(not any(k in c[2] for k in TENSORFLOW_ONLY) for c in cases())
    assert int(proc.stdout.strip().splitlines()[-1]) == expected
