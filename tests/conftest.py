import os
import pathlib
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared():
    assert SHARED.is_dir(), f"tests need ../shared beside the repo ({SHARED})"
    return SHARED


@pytest.fixture(scope="session")
def mnist(shared):
    with np.load(shared / "data" / "mnist.npz", allow_pickle=False) as d:
        return {k: d[k] for k in ("x_train", "y_train", "x_test", "y_test")}


@pytest.fixture(scope="session")
def cifar10(shared):
    with np.load(shared / "data" / "cifar10.npz", allow_pickle=False) as d:
        return {k: d[k] for k in d.files if k != "note"}


def tree_state(*roots):
    """{file: (size, mtime_ns)} under `roots`."""
    state = {}
    for root in roots:
        for p in pathlib.Path(root).rglob("*"):
            if p.is_file():
                st = p.stat()
                state[p] = (st.st_size, st.st_mtime_ns)
    return state


# Cases behind the slow-test switch (KERAS_ONEBIT_SLOW_TESTS=1), to keep CI under 20 minutes;
# each says what covers its feature in the fast run.
slow = pytest.mark.skipif(not os.environ.get("KERAS_ONEBIT_SLOW_TESTS"),
                          reason="slow: set KERAS_ONEBIT_SLOW_TESTS=1")


def run_on_jax(script, out_dir, data_path, result_name):
    """`run_on_backend` on Keras' JAX backend."""
    return run_on_backend("jax", script, out_dir, data_path, result_name)


def run_on_backend(backend, script, out_dir, data_path, result_name):
    """Runs `script OUT_DIR DATA_PATH` in a process on a Keras backend ("jax",
    "torch"; a process has one backend) and returns the arrays of
    OUT_DIR/result_name."""
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, str(script), str(out_dir), str(data_path)],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(pathlib.Path(out_dir) / result_name, allow_pickle=False) as d:
        return {k: d[k] for k in d.files}


def load_script(folder, name):
    """<folder>/<name>.py of the repository as a module (the folder on sys.path, as
    the scripts put it, for their siblings: bench's `common`, firmware's `report`)."""
    import importlib.util

    path = str(ROOT / folder)
    if path not in sys.path:
        sys.path.insert(0, path)
    spec = importlib.util.spec_from_file_location(f"{folder}_{name}", ROOT / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_bench_module(name):
    """bench/<name>.py as a module."""
    return load_script("bench", name)
