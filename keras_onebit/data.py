"""Data sets from a local directory: MNIST, CIFAR-10, CIFAR-100, SVHN.

    data = keras_onebit.data.load_dataset("cifar10", data_dir="../shared/data")
    data["x_train"], data["y_train"], data["x_test"], data["y_test"]

Images come back as uint8 NHWC (MNIST gets a channel axis), labels as int64
vectors. Where the source marks exact images (this project's CIFAR-10 copy),
`train_exact_mask` / `test_exact_mask` come along.

Every file is checked before it is trusted: sizes before allocation (the
headers of .npz members against the members, each array of a CIFAR pickle
against the file, .mat variables against the file), labels integers in
[0, classes), masks one boolean per image. A bad file is a `DataError` naming
the file, the array and the first bad index.

Formats read, first found wins:
- Keras-style `<name>.npz` (x_train, y_train, x_test, y_test [, masks]),
- CIFAR python folders `cifar-10-batches-py/`, `cifar-100-python/`, read
  with a restricted unpickler that builds only lists, dicts, bytes and
  numpy arrays (no code runs),
- SVHN `train_32x32.mat` / `test_32x32.mat`.
With no local copy and `download=True`, the files `keras.datasets` uses are
fetched (same origin and sha256, by `keras.utils.get_file`) and read by the
same checked readers as a local copy.
The directory: `data_dir`, else `$KERAS_ONEBIT_DATA`, else `../shared/data`
beside the project, else `~/.keras/datasets`.
"""

import math
import os
import pathlib
import pickle
import zipfile
import zlib

import numpy as np

from keras_onebit.errors import Error, one_line, require
from keras_onebit.fileio import regular_file

DATASETS = ("mnist", "cifar10", "cifar100", "svhn")
KEYS = ("x_train", "y_train", "x_test", "y_test")
MASKS = ("train_exact_mask", "test_exact_mask")
INPUT_SHAPES = {"mnist": (28, 28, 1), "cifar10": (32, 32, 3), "cifar100": (32, 32, 3),
                "svhn": (32, 32, 3)}
CLASSES = {"mnist": 10, "cifar10": 10, "cifar100": 100, "svhn": 10}
CIFAR_ROW = 32 * 32 * 3
DEFLATE_RATIO = 1032  # the most deflate can shrink data: a larger claim is a lie
MAX_MAT_BYTES = 2 << 30
MAT_ITEMSIZE = {"double": 8, "single": 4, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2,
                "int32": 4, "uint32": 4, "int64": 8, "uint64": 8, "logical": 1, "char": 2,
                "cell": 8, "struct": 8}


class DataError(Error, ValueError):
    """A data file is missing or not in the expected format."""


def default_dirs():
    """The directories `load_dataset` searches when no `data_dir` is given.

    Returns:
        A list of `pathlib.Path`: `$KERAS_ONEBIT_DATA` (when set), then
        `../shared/data` beside the project, then `~/.keras/datasets`. They
        need not exist.
    """
    project = pathlib.Path(__file__).resolve().parents[1]
    dirs = [os.environ.get("KERAS_ONEBIT_DATA"), project.parent / "shared" / "data",
            pathlib.Path.home() / ".keras" / "datasets"]
    return [pathlib.Path(d) for d in dirs if d]


def load_dataset(name, data_dir=None, download=False):
    """Loads a data set from a local directory, or downloads it.

    Every file is checked before it is trusted (see the module docstring).

    Args:
        name: "mnist", "cifar10", "cifar100" or "svhn".
        data_dir: the directory to read; None searches `default_dirs()` in
            order, first copy found wins.
        download: with no local copy, fetch the files `keras.datasets`
            uses (MNIST, CIFAR-10 and CIFAR-100 only; same origin and sha256)
            and read them with the checks of a local copy.

    Returns:
        A dict of NumPy arrays: "x_train", "x_test" uint8 NHWC images
        (MNIST gets a channel axis), "y_train", "y_test" int64 label vectors
        in [0, classes), and, where the source has them,
        "train_exact_mask" / "test_exact_mask" (bool, one per image).

    Raises:
        DataError: an unknown name; no local copy (and `download=False`, or
            a data set that cannot be downloaded); a failed download; a file that is
            empty, truncated, malformed or holds out-of-range labels, wrong
            shapes or dtypes.
        MissingDependencyError: SVHN's .mat files without scipy installed.
    """
    if name not in DATASETS:
        raise DataError(f"Unknown dataset {name!r}: expected one of {DATASETS}.")
    dirs = [pathlib.Path(data_dir)] if data_dir else default_dirs()
    for directory in dirs:
        found = _load_local(name, directory)
        if found is not None:
            return _normalise(name, *found)
    if download:
        data = _download(name)  # a name without a download raises here
        return _normalise(name, data, DOWNLOADS[name][1])
    raise DataError(
        f"No {name} data found in {', '.join(str(d) for d in dirs)}: expected "
        f"{name}.npz ({', '.join(KEYS)}) or the original files; "
        "set --data-dir / KERAS_ONEBIT_DATA."
    )


def _load_local(name, directory):
    """(arrays, the file or folder they came from), or None if there is no copy."""
    npz = directory / f"{name}.npz"
    if npz.exists():
        return _load_npz(npz), npz
    if name in ("cifar10", "cifar100"):
        folder = directory / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
        if folder.is_dir():
            return _load_cifar_folder(name, folder), folder
    if name == "svhn" and (directory / "train_32x32.mat").is_file():
        return {**_load_svhn_mat(directory / "train_32x32.mat", "train"),
                **_load_svhn_mat(directory / "test_32x32.mat", "test")}, directory
    return None


def npy_header(f):
    """(shape, fortran_order, dtype) of the .npy header at the start of the
    binary file `f`, which is left at the start of the data (nothing else read).

    Args:
        f: a binary file object positioned at the start of a .npy file (or
            .npz member).

    Returns:
        The tuple (shape, fortran_order, dtype) numpy's header reader gives.

    Raises:
        ValueError: not a .npy header of version 1.0 or 2.0 (numpy's own
            errors for a malformed one: ValueError, EOFError, SyntaxError).
    """
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(f)
    raise ValueError(f".npy format version {version} is not read here (1.0 and 2.0 are)")


def _check_npz_members(path):
    """Each member's .npy header against the member's size, so that `np.load`
    never allocates more than the file holds (a header can declare any shape)."""
    size = path.stat().st_size
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            name = info.filename
            if info.compress_size > size or info.file_size > DEFLATE_RATIO * info.compress_size:
                raise DataError(f"{path}: member {name} declares {info.file_size} bytes from "
                                f"{info.compress_size} in a {size}-byte file: corrupt.")
            if not name.endswith(".npy"):
                continue
            with zf.open(info) as f:
                shape, _, dtype = npy_header(f)
                data_bytes = info.file_size - f.tell()
            if not dtype.hasobject and math.prod(shape) * dtype.itemsize != data_bytes:
                raise DataError(f"{path}: array {name[:-4]} declares {dtype}{tuple(shape)} but "
                                f"its member holds {data_bytes} bytes of data.")


def _load_npz(path):
    regular_file(path, "a .npz data file", DataError)
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (0 bytes), not a .npz file.")
    try:
        if not zipfile.is_zipfile(path):
            raise DataError(f"{path}: not a .npz (zip) file.")
        _check_npz_members(path)
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in KEYS if k not in f.files]
            if missing:
                raise DataError(f"{path}: missing arrays {missing}; expected {KEYS}.")
            return {k: f[k] for k in KEYS + MASKS if k in f.files}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, SyntaxError, RuntimeError, zipfile.BadZipFile,
            zlib.error) as e:
        raise DataError(f"{path}: not a readable .npz file ({one_line(e)}).") from e


class _NdarrayClass:
    """What a pickle gets for numpy.ndarray: usable only as the class argument of
    the checked `_reconstruct` (calling numpy.ndarray(shape) would allocate)."""

    def __new__(cls, *args, **kwargs):
        raise DataError("a CIFAR pickle may not call numpy.ndarray directly")


class _SafeUnpickler(pickle.Unpickler):
    """Builds only numpy arrays besides plain containers; no other globals.

    An array is `_reconstruct(ndarray, shape, typecode)` then its state (the
    bytes, which numpy checks against the shape): the shape is checked against
    `max_bytes` (the file size) before anything is allocated.
    """

    RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"),
                   ("numpy._core.multiarray", "_reconstruct")}
    ALLOWED = RECONSTRUCT | {("numpy", "ndarray"), ("numpy", "dtype"),
                             ("_codecs", "encode")}  # how protocol 2 stores an array's bytes

    def __init__(self, file, max_bytes, **kwargs):
        super().__init__(file, **kwargs)
        self.max_bytes = max_bytes

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise DataError(f"refusing to load {module}.{name} from a CIFAR pickle")
        if (module, name) in self.RECONSTRUCT:
            self._numpy_reconstruct = super().find_class(module, name)
            return self._reconstruct
        if (module, name) == ("numpy", "ndarray"):
            return _NdarrayClass
        if (module, name) == ("_codecs", "encode"):
            return _latin1
        return super().find_class(module, name)

    def _reconstruct(self, cls, shape, typecode):
        if cls is not _NdarrayClass:
            raise DataError(f"a CIFAR pickle may build numpy arrays only, not {cls!r}")
        if not (isinstance(shape, tuple) and all(type(d) is int and d >= 0 for d in shape)):
            raise DataError(f"an array with the shape {shape!r}")
        nbytes = math.prod(shape) * np.dtype(typecode).itemsize
        if nbytes > self.max_bytes:
            raise DataError(f"an array of shape {shape} ({nbytes} bytes) in a "
                            f"{self.max_bytes}-byte file")
        return self._numpy_reconstruct(np.ndarray, shape, typecode)


def _latin1(text, encoding="utf-8"):
    """`_codecs.encode` as protocol 2 uses it for an array's bytes (latin-1 text only)."""
    if type(text) is not str or encoding not in ("latin1", "latin-1"):
        raise DataError("a CIFAR pickle may encode only latin-1 text")
    return text.encode("latin-1")


def _unpickle(path):
    if not path.exists():
        raise DataError(f"Missing CIFAR file {path}.")
    regular_file(path, "a CIFAR batch file", DataError)
    try:
        with open(path, "rb") as f:
            batch = _SafeUnpickler(f, os.fstat(f.fileno()).st_size, encoding="bytes").load()
    except DataError as e:  # a refused global or a too large array
        raise DataError(f"{path}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, OverflowError, MemoryError) as e:
        raise DataError(f"{path}: not a CIFAR python batch ({one_line(e)}).") from e
    if not isinstance(batch, dict) or b"data" not in batch:
        raise DataError(f"{path}: expected a CIFAR batch dict with b'data'.")
    return batch


def _cifar_batch(path, batch, label_key, classes):
    """(rows uint8 (N, 3072), labels int64 (N,)) of one batch, checked."""
    rows = batch[b"data"]
    if not (isinstance(rows, np.ndarray) and rows.dtype == np.uint8 and rows.ndim == 2):
        what = f"{rows.dtype}{rows.shape}" if isinstance(rows, np.ndarray) else type(rows).__name__
        raise DataError(f"{path}: b'data' is {what}, expected uint8 rows (N, {CIFAR_ROW}).")
    if rows.shape[1] != CIFAR_ROW:
        raise DataError(f"{path}: b'data' rows have {rows.shape[1]} values, expected "
                        f"{CIFAR_ROW} (32 x 32 x 3).")
    if label_key not in batch:
        raise DataError(f"{path}: the batch has no labels ({label_key!r}).")
    labels = batch[label_key]
    if not isinstance(labels, (list, np.ndarray)) or len(labels) != len(rows):
        count = len(labels) if isinstance(labels, (list, np.ndarray)) else type(labels).__name__
        raise DataError(f"{path}: {label_key!r} has {count} labels for {len(rows)} rows.")
    return rows, _labels(labels, classes, f"{path}: {label_key.decode()}")


def _cifar_arrays(name, batches, label_key):
    """(images NHWC, labels) of [(path, batch)]."""
    checked = [_cifar_batch(path, b, label_key, CLASSES[name]) for path, b in batches]
    x = np.concatenate([rows for rows, _ in checked])
    y = np.concatenate([labels for _, labels in checked])
    return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), y


def _load_cifar_folder(name, folder):
    if name == "cifar10":
        train = [folder / f"data_batch_{i}" for i in range(1, 6)]
        test, key = [folder / "test_batch"], b"labels"
    else:
        train, test, key = [folder / "train"], [folder / "test"], b"fine_labels"
    train = [(path, _unpickle(path)) for path in train]
    test = [(path, _unpickle(path)) for path in test]
    x_train, y_train = _cifar_arrays(name, train, key)
    x_test, y_test = _cifar_arrays(name, test, key)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def _labels(values, classes, where):
    """`values` as an int64 vector of integers in [0, classes).

    Args:
        values: a list of Python ints or a numeric array (integral floats pass).
        classes: the number of classes.
        where: the file and array, for the message.

    Returns:
        An int64 numpy vector.

    Raises:
        DataError: naming `where`, the first bad index and its value.
    """
    if isinstance(values, list):
        for i, v in enumerate(values):
            if type(v) is not int or not 0 <= v < classes:
                raise DataError(f"{where}[{i}] is {v!r}: labels must be integers in "
                                f"[0, {classes}).")
        return np.asarray(values, np.int64)
    y = np.asarray(values).reshape(-1)
    if y.dtype.kind not in "iuf":
        raise DataError(f"{where} holds {y.dtype} values: labels must be integers in "
                        f"[0, {classes}).")
    with np.errstate(invalid="ignore"):
        good = (y >= 0) & (y < classes)
        if y.dtype.kind == "f":
            good &= np.isfinite(y) & (y == np.floor(y))
    if not good.all():
        i = int(np.argmin(good))
        raise DataError(f"{where}[{i}] is {y[i].item()!r}: labels must be integers in "
                        f"[0, {classes}).")
    return y.astype(np.int64)


def scipy_io():
    """scipy.io, or a `MissingDependencyError` naming the pip extra.

    Returns:
        The `scipy.io` module.

    Raises:
        MissingDependencyError: scipy is not installed (the "mat" extra).
    """
    return require("scipy.io", "mat", "Reading .mat files")


def check_mat_sizes(path, error=DataError, max_bytes=MAX_MAT_BYTES, what="a data set .mat file"):
    """Raises `error` unless the .mat file's size and its variables' declared
    sizes are plausible: at most `max_bytes`, and no more data than deflate
    could hold (so a small file cannot make `loadmat` allocate much).

    Args:
        path: a pathlib.Path of an existing file.
        error: the error class to raise (a keras_onebit.Error).
        max_bytes: the largest file accepted.
        what: what the file is, for the message.

    Raises:
        error: the file is empty, too large, or declares more data than it holds.
    """
    size = path.stat().st_size
    if size == 0:
        raise error(f"{path}: the file is empty (0 bytes).")
    if size > max_bytes:
        raise error(f"{path}: {size} bytes, more than the {max_bytes}-byte limit of {what}.")
    total = 0
    for name, shape, kind in scipy_io().whosmat(str(path)):
        if kind == "sparse":
            continue
        total += math.prod(shape) * MAT_ITEMSIZE.get(kind, 1)
        if total > DEFLATE_RATIO * size:
            raise error(f"{path}: variable {name!r} declares shape {shape} ({kind}), more "
                        f"data than a {size}-byte file can hold.")


def _load_svhn_mat(path, split):
    loadmat = scipy_io().loadmat
    from scipy.io.matlab import MatReadError

    if not path.exists():
        raise DataError(f"Missing SVHN file {path}.")
    regular_file(path, "an SVHN .mat file", DataError)
    try:
        check_mat_sizes(path)
        mat = loadmat(path)
    except DataError:
        raise
    except (MatReadError, ValueError, TypeError, OSError, NotImplementedError, EOFError,
            zlib.error) as e:
        raise DataError(f"{path}: not a readable MATLAB v5 file ({one_line(e)}).") from e
    if "X" not in mat or "y" not in mat or mat["X"].ndim != 4:
        raise DataError(f"{path}: expected variables 'X' (32x32x3xN) and 'y'.")
    y = _labels(mat["y"], 11, f"{path}: y")  # SVHN writes digit 0 as 10
    y[y == 10] = 0
    return {f"x_{split}": np.transpose(mat["X"], (3, 0, 1, 2)), f"y_{split}": y}


# What `download=True` fetches: the files keras.datasets fetches (same origin and
# sha256), read by this module's own checked readers, never by keras.datasets.
DOWNLOADS = {
    "mnist": ("mnist.npz", "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
              "mnist.npz", "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"),
    "cifar10": ("cifar-10-batches-py-target", "https://www.cs.toronto.edu/~kriz/"
                "cifar-10-python.tar.gz",
                "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),
    "cifar100": ("cifar-100-python-target", "https://www.cs.toronto.edu/~kriz/"
                 "cifar-100-python.tar.gz",
                 "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"),
}


def _download(name):
    """Fetches `name` with keras.utils.get_file (checked against its sha256,
    cached in ~/.keras/datasets) and reads it like a local copy."""
    import keras

    if name not in DOWNLOADS:
        raise DataError(f"{name} cannot be downloaded: put its files in the data directory.")
    fname, origin, sha256 = DOWNLOADS[name]
    try:
        path = pathlib.Path(keras.utils.get_file(fname=fname, origin=origin, file_hash=sha256,
                                                 extract=name != "mnist"))
    except Exception as e:  # keras.utils.get_file raises a bare Exception on a network error
        raise DataError(f"Downloading {name} from {origin} failed "
                        f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                        "put its files in the data directory (--data_dir) instead.") from e
    if name == "mnist":
        return _load_npz(path)
    return _load_cifar_folder(name, path / ("cifar-10-batches-py" if name == "cifar10"
                                            else "cifar-100-python"))


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
        y = _labels(out[f"y_{split}"], CLASSES[name], f"{source}: {name} y_{split}")
        if len(y) != len(x):
            raise DataError(f"{source}: {len(x)} x_{split} images but {len(y)} labels.")
        out[f"x_{split}"], out[f"y_{split}"] = x, y
        mask = out.get(f"{split}_exact_mask")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.dtype != bool or mask.shape != (len(x),):
                raise DataError(f"{source}: {split}_exact_mask is {mask.dtype}{mask.shape}, "
                                f"expected bool ({len(x)},), one entry per image.")
    return out
