"""Data sets from a local directory: MNIST, CIFAR-10, CIFAR-100, SVHN.

    data = keras_onebit.data.load_dataset("cifar10", data_dir="../shared/data")
    data["x_train"], data["y_train"], data["x_test"], data["y_test"]

Images come back as uint8 NHWC (MNIST gets a channel axis), labels as int64
vectors. Where the source marks exact images (this project's CIFAR-10 copy),
`train_exact_mask` / `test_exact_mask` come along.

Formats read, first found wins:
- Keras-style `<name>.npz` (x_train, y_train, x_test, y_test [, masks]),
- CIFAR python folders `cifar-10-batches-py/`, `cifar-100-python/`, read
  with a restricted unpickler that builds only lists, dicts, bytes and
  numpy arrays (no code runs),
- SVHN `train_32x32.mat` / `test_32x32.mat`.
With no local copy, `keras.datasets` is used when `download=True`.
The directory: `data_dir`, else `$KERAS_ONEBIT_DATA`, else `../shared/data`
beside the project, else `~/.keras/datasets`.
"""

import os
import pathlib
import pickle

import numpy as np

from keras_onebit.errors import Error

DATASETS = ("mnist", "cifar10", "cifar100", "svhn")
KEYS = ("x_train", "y_train", "x_test", "y_test")
MASKS = ("train_exact_mask", "test_exact_mask")
INPUT_SHAPES = {"mnist": (28, 28, 1), "cifar10": (32, 32, 3), "cifar100": (32, 32, 3),
                "svhn": (32, 32, 3)}
CLASSES = {"mnist": 10, "cifar10": 10, "cifar100": 100, "svhn": 10}


class DataError(Error, ValueError):
    """A data file is missing or not in the expected format."""


def default_dirs():
    project = pathlib.Path(__file__).resolve().parents[1]
    dirs = [os.environ.get("KERAS_ONEBIT_DATA"), project.parent / "shared" / "data",
            pathlib.Path.home() / ".keras" / "datasets"]
    return [pathlib.Path(d) for d in dirs if d]


def load_dataset(name, data_dir=None, download=False):
    """Returns a dict of numpy arrays (see the module docstring)."""
    if name not in DATASETS:
        raise DataError(f"Unknown dataset {name!r}: expected one of {DATASETS}.")
    dirs = [pathlib.Path(data_dir)] if data_dir else default_dirs()
    for directory in dirs:
        data = _load_local(name, directory)
        if data is not None:
            return _normalise(name, data, directory)
    if download:
        return _normalise(name, _load_keras(name), "keras.datasets")
    raise DataError(
        f"No {name} data found in {', '.join(str(d) for d in dirs)}: expected "
        f"{name}.npz ({', '.join(KEYS)}) or the original files; "
        "set --data-dir / KERAS_ONEBIT_DATA."
    )


def _load_local(name, directory):
    npz = directory / f"{name}.npz"
    if npz.is_file():
        return _load_npz(npz)
    if name in ("cifar10", "cifar100"):
        folder = directory / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
        if folder.is_dir():
            return _load_cifar_folder(name, folder)
    if name == "svhn" and (directory / "train_32x32.mat").is_file():
        return {**_load_svhn_mat(directory / "train_32x32.mat", "train"),
                **_load_svhn_mat(directory / "test_32x32.mat", "test")}
    return None


def _load_npz(path):
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in KEYS if k not in f.files]
            if missing:
                raise DataError(f"{path}: missing arrays {missing}; expected {KEYS}.")
            return {k: f[k] for k in KEYS + MASKS if k in f.files}
    except (OSError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: not a readable .npz file ({e}).") from e


class _SafeUnpickler(pickle.Unpickler):
    """Builds only numpy arrays besides plain containers; no other globals."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"),
               ("_codecs", "encode")}  # how protocol 2 stores the bytes of an array

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise DataError(f"refusing to load {module}.{name} from a CIFAR pickle")


def _unpickle(path):
    if not path.is_file():
        raise DataError(f"Missing CIFAR file {path}.")
    try:
        with open(path, "rb") as f:
            batch = _SafeUnpickler(f, encoding="bytes").load()
    except DataError as e:  # a refused global
        raise DataError(f"{path}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise DataError(f"{path}: not a CIFAR python batch ({e}).") from e
    if not isinstance(batch, dict) or b"data" not in batch:
        raise DataError(f"{path}: expected a CIFAR batch dict with b'data'.")
    return batch


def _cifar_arrays(batches, label_key):
    x = np.concatenate([np.asarray(b[b"data"], np.uint8) for b in batches])
    y = np.concatenate([np.asarray(b[label_key], np.int64) for b in batches])
    return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), y


def _load_cifar_folder(name, folder):
    if name == "cifar10":
        train = [_unpickle(folder / f"data_batch_{i}") for i in range(1, 6)]
        test, key = [_unpickle(folder / "test_batch")], b"labels"
    else:
        train, test = [_unpickle(folder / "train")], [_unpickle(folder / "test")]
        key = b"fine_labels"
    x_train, y_train = _cifar_arrays(train, key)
    x_test, y_test = _cifar_arrays(test, key)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def _load_svhn_mat(path, split):
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    if not path.is_file():
        raise DataError(f"Missing SVHN file {path}.")
    try:
        mat = loadmat(path)
    except (MatReadError, ValueError, TypeError, OSError, NotImplementedError) as e:
        raise DataError(f"{path}: not a readable MATLAB v5 file ({e}).") from e
    if "X" not in mat or "y" not in mat or mat["X"].ndim != 4:
        raise DataError(f"{path}: expected variables 'X' (32x32x3xN) and 'y'.")
    y = mat["y"].reshape(-1).astype(np.int64)
    y[y == 10] = 0
    return {f"x_{split}": np.transpose(mat["X"], (3, 0, 1, 2)), f"y_{split}": y}


def _load_keras(name):
    import keras

    module = {"mnist": keras.datasets.mnist, "cifar10": keras.datasets.cifar10,
              "cifar100": keras.datasets.cifar100}.get(name)
    if module is None:
        raise DataError(f"{name} is not in keras.datasets: put its files in the data directory.")
    (x_train, y_train), (x_test, y_test) = module.load_data()
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def _normalise(name, data, source):
    out = dict(data)
    for split in ("train", "test"):
        x = np.asarray(out[f"x_{split}"])
        if x.ndim == 3:
            x = x[..., None]
        if x.shape[1:] != INPUT_SHAPES[name] or x.dtype != np.uint8:
            raise DataError(
                f"{source}: {name} x_{split} is {x.dtype}{x.shape}, expected uint8 (N,"
                f" {', '.join(map(str, INPUT_SHAPES[name]))})."
            )
        y = np.asarray(out[f"y_{split}"]).reshape(-1).astype(np.int64)
        if len(y) != len(x):
            raise DataError(f"{source}: {len(x)} x_{split} images but {len(y)} labels.")
        out[f"x_{split}"], out[f"y_{split}"] = x, y
    return out
