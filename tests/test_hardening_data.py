"""Hostile data files (issue 11): labels, CIFAR pickles, .npz and .mat sizes and
values, NaN calibration images, a truncated checkpoint on --resume.

Each test asserts the error class, the file / key / index the message names, and
that no file changed outside what the test itself wrote.
"""

import contextlib
import json
import pathlib
import pickle
import tracemalloc

import keras
import numpy as np
import pytest
from hub_helpers import keras_layout_dict, matlab_layout_dict, randomize_bn, save_mat
from scipy.io import savemat

import keras_onebit as kob
from keras_onebit import data as datasets
from keras_onebit import model_files
from keras_onebit.errors import ConfigError, Error
from keras_onebit.hub import MatFormatError, mcdonnell
from tests.conftest import tree_state

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def unchanged(tmp_path, monkeypatch):
    """Call it once the hostile files are written: from then on until the end
    of the test, no file may change in tmp_path, a sandboxed home or the
    shipped models."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    roots = (tmp_path, ROOT / "pretrained")
    snapshot = {}

    def freeze():
        snapshot["before"] = tree_state(*roots)

    yield freeze
    if "before" in snapshot:
        assert tree_state(*roots) == snapshot["before"]


def refused(error_class, call, *names):
    """The one-line message of `error_class` raised by `call()`, holding each of `names`."""
    with pytest.raises(error_class) as e:
        call()
    message = str(e.value)
    assert isinstance(e.value, Error) and "\n" not in message, message
    for name in names:
        assert name in message, message
    return message


def write_npz(path, y_train, y_test=(0,)):
    y_train = np.asarray(y_train)
    np.savez(path, x_train=np.zeros((len(y_train), 28, 28), np.uint8), y_train=y_train,
             x_test=np.zeros((len(y_test), 28, 28), np.uint8), y_test=np.asarray(y_test))


# ------------------------------------------------------------------------- labels


@pytest.mark.parametrize("labels, index, value", [
    (np.array([1, 2, 255, 3], np.uint8), 2, "255"),
    (np.array([0, -1, 3]), 1, "-1"),
    (np.array([1.0, 1.7]), 1, "1.7"),
    (np.array([3.0, np.nan]), 1, "nan"),
])
def test_bad_npz_labels_name_file_and_first_index(tmp_path, unchanged, labels, index, value):
    write_npz(tmp_path / "mnist.npz", labels)
    unchanged()
    refused(datasets.DataError, lambda: datasets.load_dataset("mnist", data_dir=tmp_path),
            "mnist.npz", f"y_train[{index}] is {value}:", "[0, 10)")


def test_string_labels_and_bad_mask_are_refused(tmp_path, unchanged):
    write_npz(tmp_path / "mnist.npz", np.array(["1", "2"]))
    path = tmp_path / "cifar10.npz"
    np.savez(path, x_train=np.zeros((2, 32, 32, 3), np.uint8), y_train=np.array([1, 2]),
             x_test=np.zeros((1, 32, 32, 3), np.uint8), y_test=np.array([0]),
             train_exact_mask=np.array([1, 0, 1]), test_exact_mask=np.array([True]))
    unchanged()
    refused(datasets.DataError, lambda: datasets.load_dataset("mnist", data_dir=tmp_path),
            "mnist.npz", "y_train", "<U1")
    refused(datasets.DataError, lambda: datasets.load_dataset("cifar10", data_dir=tmp_path),
            "cifar10.npz", "train_exact_mask", "expected bool (2,)")


def test_zero_length_and_non_zip_npz(tmp_path, unchanged):
    (tmp_path / "mnist.npz").write_bytes(b"")
    np.save(tmp_path / "cifar10.npz", np.zeros(3))  # an .npy under the .npz name
    (tmp_path / "cifar10.npz.npy").rename(tmp_path / "cifar10.npz")
    unchanged()
    refused(datasets.DataError, lambda: datasets.load_dataset("mnist", data_dir=tmp_path),
            "mnist.npz", "empty")
    refused(datasets.DataError, lambda: datasets.load_dataset("cifar10", data_dir=tmp_path),
            "cifar10.npz", "not a .npz (zip) file")


def test_npz_member_header_declaring_4_tib_is_refused(tmp_path, unchanged):
    path = tmp_path / "mnist.npz"
    write_npz(path, np.zeros(100, np.uint8))  # x_train: 78400 bytes, past zipfile's first read
    data = bytearray(path.read_bytes())
    start = data.index(b"{'descr': '|u1'")
    end = data.index(b"\n", start)
    header = "{'descr': '|u1', 'fortran_order': False, 'shape': (4398046511104,), }"
    data[start:end] = header.ljust(end - start).encode()  # same length, 4 TiB declared
    path.write_bytes(bytes(data))  # the member's CRC is only checked at its end
    unchanged()
    with bounded_memory():
        refused(datasets.DataError, lambda: datasets.load_dataset("mnist", data_dir=tmp_path),
                "mnist.npz", "array x_train declares uint8(4398046511104,)", "holds 78400 bytes")


@contextlib.contextmanager
def bounded_memory(limit=64 << 20):
    """A block whose Python and NumPy allocations peak below `limit` bytes (tracemalloc
    sees NumPy's buffers): the refusal came before the declared size was allocated."""
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit, f"peak {peak} bytes"


# ------------------------------------------------------------------- CIFAR pickles


def write_pickle(path, value):
    with open(path, "wb") as f:
        pickle.dump(value, f, protocol=2)


def cifar100_folder(tmp_path, train, test=None):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir(exist_ok=True)
    write_pickle(folder / "train", train)
    write_pickle(folder / "test", test if test is not None else train)
    return folder


def rows(n, width=3072):
    return np.zeros((n, width), np.uint8)


@pytest.mark.parametrize("labels, index, value", [
    ([1, 255], 1, "255"), ([-1, 2], 0, "-1"), ([1, 1.7], 1, "1.7"), ([True, 1], 0, "True"),
])
def test_bad_cifar_labels_name_file_and_index(tmp_path, unchanged, labels, index, value):
    cifar100_folder(tmp_path, {b"data": rows(2), b"fine_labels": labels})
    unchanged()
    refused(datasets.DataError, lambda: datasets.load_dataset("cifar100", data_dir=tmp_path),
            "cifar-100-python/train", f"fine_labels[{index}] is {value}", "[0, 100)")


def test_cifar_rows_of_the_wrong_length_and_missing_labels(tmp_path, unchanged):
    cifar100_folder(tmp_path, {b"data": rows(2, 3000), b"fine_labels": [0, 1]})
    folder10 = tmp_path / "cifar-10-batches-py"
    folder10.mkdir()
    for i in range(1, 6):
        write_pickle(folder10 / f"data_batch_{i}", {b"data": rows(1), b"labels": [0]})
    write_pickle(folder10 / "test_batch", {b"data": rows(1), b"coarse": [0]})
    unchanged()
    refused(datasets.DataError, lambda: datasets.load_dataset("cifar100", data_dir=tmp_path),
            "cifar-100-python/train", "3000 values", "3072")
    refused(datasets.DataError, lambda: datasets.load_dataset("cifar10", data_dir=tmp_path),
            "test_batch", "no labels", "b'labels'")


class HugeReconstruct:
    """Unpickles as numpy's _reconstruct(ndarray, (2**45,), 'b'): 32 TiB."""

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        return (_reconstruct, (np.ndarray, (1 << 45,), b"b"))


class DirectNdarray:
    """Unpickles as numpy.ndarray((2**45,)): an allocation without _reconstruct."""

    def __reduce__(self):
        return (np.ndarray, ((1 << 45,), "u1"))


@pytest.mark.parametrize("payload, names", [
    (HugeReconstruct(), ["35184372088832 bytes", "-byte file"]),
    (DirectNdarray(), ["numpy.ndarray"]),
])
def test_pickle_cannot_request_huge_arrays(tmp_path, unchanged, payload, names):
    cifar100_folder(tmp_path, {b"data": payload, b"fine_labels": [0]})
    unchanged()
    with bounded_memory():
        refused(datasets.DataError, lambda: datasets.load_dataset("cifar100", data_dir=tmp_path),
                "cifar-100-python/train", *names)


def test_real_array_pickles_still_load(tmp_path):
    images = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    cifar100_folder(tmp_path, {b"data": images, b"fine_labels": np.array([4, 99])})
    data = datasets.load_dataset("cifar100", data_dir=tmp_path)
    assert data["x_train"].shape == (2, 32, 32, 3) and list(data["y_train"]) == [4, 99]


# -------------------------------------------------------------------- .mat files


def svhn(tmp_path, y_train, x_train=None):
    x = np.zeros((32, 32, 3, len(y_train)), np.uint8) if x_train is None else x_train
    savemat(tmp_path / "train_32x32.mat", {"X": x, "y": np.asarray(y_train)[:, None]})
    savemat(tmp_path / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 1), np.uint8), "y": [[1]]})


@pytest.mark.parametrize("y, index, value", [
    ([1.0, np.nan], 1, "nan"), ([11.0, 1.0], 0, "11.0"), ([1.0, 2.5], 1, "2.5"),
])
def test_svhn_mat_labels_are_checked(tmp_path, unchanged, y, index, value):
    svhn(tmp_path, y)
    unchanged()
    refused(datasets.DataError, lambda: datasets.load_dataset("svhn", data_dir=tmp_path),
            "train_32x32.mat", f"y[{index}] is {value}")


def test_svhn_mat_float_images_and_empty_file(tmp_path, unchanged):
    svhn(tmp_path, [1.0], x_train=np.full((32, 32, 3, 1), np.nan))
    svhn_dir = tmp_path / "empty"
    svhn_dir.mkdir()
    (svhn_dir / "train_32x32.mat").write_bytes(b"")
    unchanged()
    refused(datasets.DataError, lambda: datasets.load_dataset("svhn", data_dir=tmp_path),
            "x_train is float64", "expected uint8")
    refused(datasets.DataError, lambda: datasets.load_dataset("svhn", data_dir=svhn_dir),
            "train_32x32.mat", "empty")


@pytest.fixture(scope="module")
def wrn8():
    keras.utils.set_random_seed(7)
    return randomize_bn(kob.models.wrn(8, 1, classes=10), 7)


@pytest.mark.parametrize("bad", [np.nan, -np.inf, -0.25])
def test_keras_layout_bn_variance_is_checked(tmp_path, unchanged, wrn8, bad):
    d = keras_layout_dict(wrn8)
    key = "batch_normalization_v1_107"
    d[key] = d[key].copy()
    d[key][1, 3] = bad  # (mean, variance) rows: the variance of channel 3
    path = save_mat(tmp_path / "poisoned.mat", d)
    unchanged()
    message = refused(MatFormatError, lambda: mcdonnell.read_mat(path), "poisoned.mat", key)
    assert ("finite" if not np.isfinite(bad) else "negative variance") in message


@pytest.mark.parametrize("field, bad, names", [
    ("Moments", np.nan, ["Moments{2}", "finite"]),
    ("Moments", -1.0, ["Moments{2} (sigma column)", "negative sigma"]),
    ("BNG", np.inf, ["BNG{2}", "finite"]),
])
def test_matlab_layout_moments_are_checked(tmp_path, unchanged, wrn8, field, bad, names):
    d = matlab_layout_dict(wrn8)
    cells = d[field].copy()
    cell = np.array(cells.flat[1], copy=True)
    cell.reshape(-1)[-1] = bad  # the last sigma / gamma of the second BN
    cells.flat[1] = cell
    d[field] = cells
    path = save_mat(tmp_path / "poisoned.mat", d)
    unchanged()
    refused(MatFormatError, lambda: mcdonnell.read_mat(path), "poisoned.mat", *names)


def test_mat_declaring_more_than_the_file_holds(tmp_path, unchanged):
    path = tmp_path / "lie.mat"
    savemat(path, {"conv2d": np.zeros((1, 3, 3, 3, 16), np.uint8)})
    data = bytearray(path.read_bytes())
    dims = np.array([1, 3, 3, 3, 16], "<i4").tobytes()
    at = data.index(dims)
    data[at:at + len(dims)] = np.array([1, 3, 3, 65536, 65536], "<i4").tobytes()
    path.write_bytes(bytes(data))
    (tmp_path / "empty.mat").write_bytes(b"")
    unchanged()
    refused(MatFormatError, lambda: mcdonnell.read_mat(path), "lie.mat", "'conv2d'",
            "more data than")
    refused(MatFormatError, lambda: mcdonnell.read_mat(tmp_path / "empty.mat"), "empty.mat",
            "empty")


# ---------------------------------------------------------------- calibration data


def test_nan_calibration_image_is_named(tmp_path, unchanged):
    pytest.importorskip("tensorflow")
    from keras_onebit import export

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    images = np.random.default_rng(0).uniform(0, 255, (8, 4, 4, 1)).astype("float32")
    images[5, 1, 2, 0] = np.nan
    images[7, 0, 0, 0] = np.inf
    unchanged()
    for fmt in ("int8", "int4"):
        refused(export.ExportError,
                lambda fmt=fmt: export.export_tflite(model, tmp_path / f"m_{fmt}.tflite", fmt,
                                                     representative_data=images),
                "representative_data image 5", "NaN or infinite", "2 such images")
    assert not list(tmp_path.glob("*.tflite"))


# ---------------------------------------------------------- checkpoint on --resume


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing", "bad_state"])
def test_truncated_checkpoint_on_resume_names_the_file(tmp_path, unchanged, damage):
    from keras_onebit.training import loop

    out = tmp_path / "run"
    out.mkdir()
    keras.utils.set_random_seed(0)
    config = loop.RunConfig(model="wrn_20_1", dataset="cifar10",
                            epochs=2, batch_size=50, train_limit=100, out_dir=str(out),
                            verbose=0)
    model = loop.build(config, 2)
    model_files.save_model(model, out / loop.CHECKPOINT)
    (out / loop.STATE).write_text(json.dumps({"epochs_done": 1, "step": 2}))
    checkpoint = out / loop.CHECKPOINT
    if damage == "truncate":
        checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    elif damage == "garbage":
        data = bytearray(checkpoint.read_bytes())
        data[len(data) // 2:len(data) // 2 + 4096] = b"\0" * 4096  # a zip, with corrupt members
        checkpoint.write_bytes(bytes(data))
    elif damage == "missing":
        checkpoint.unlink()
    else:
        (out / loop.STATE).write_text('{"epochs_done": "1"}')
    unchanged()
    names = [str(out / (loop.STATE if damage == "bad_state" else loop.CHECKPOINT)),
             "cannot resume", "remove checkpoint.keras and state.json"]
    message = refused(ConfigError, lambda: loop.train(config, resume=True), *names)
    assert "File not found" not in message


def test_failed_download_is_one_data_error(monkeypatch, tmp_path):
    def offline(*args, **kwargs):  # what keras.utils.get_file raises without network
        raise Exception("URL fetch failure on https://example/mnist.npz: None -- [Errno -3]")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(kob.DataError, match=r"Downloading mnist .*URL fetch failure.*--data_dir"):
        datasets.load_dataset("mnist", data_dir=tmp_path, download=True)  # no local copy


class Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_download_is_read_by_the_checked_readers(monkeypatch, tmp_path, capsys):
    """A downloaded CIFAR-10 goes through the restricted unpickler, as a local copy does."""
    cache = tmp_path / "cache" / "cifar-10-batches-py-target"
    folder = cache / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    asked = {}

    def get_file(fname, origin, file_hash, extract):
        asked.update(fname=fname, origin=origin, file_hash=file_hash, extract=extract)
        return str(cache)

    monkeypatch.setattr(keras.utils, "get_file", get_file)
    for i in range(1, 6):
        write_pickle(folder / f"data_batch_{i}", {b"data": rows(2), b"labels": [i % 10, 0]})
    write_pickle(folder / "test_batch", {b"data": rows(3), b"labels": [9, 8, 7]})
    empty = tmp_path / "empty"
    empty.mkdir()
    data = datasets.load_dataset("cifar10", data_dir=empty, download=True)
    assert data["x_train"].shape == (10, 32, 32, 3) and data["y_test"].tolist() == [9, 8, 7]
    assert asked["origin"].endswith("cifar-10-python.tar.gz") and asked["extract"]
    assert len(asked["file_hash"]) == 64
    write_pickle(folder / "test_batch", {b"data": rows(3), b"labels": Evil()})
    refused(datasets.DataError,
            lambda: datasets.load_dataset("cifar10", data_dir=empty, download=True),
            "test_batch", "refusing to load", "print")
    assert "code ran" not in capsys.readouterr().out
