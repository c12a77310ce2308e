"""The data loaders read each format they name, and refuse what is not it."""

import pickle

import numpy as np
import pytest
from scipy.io import savemat

from keras_onebit import data as datasets


def cifar_batch(rng, n, label_key):
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    rows = images.transpose(0, 3, 1, 2).reshape(n, 3072)  # the CIFAR row layout: R, G, B planes
    labels = rng.integers(0, 10, n)
    return images, labels, {b"data": rows, label_key: labels.tolist(), b"batch_label": b"x"}


def write_pickle(path, value):
    with open(path, "wb") as f:
        pickle.dump(value, f, protocol=2)


def test_cifar10_python_folder_is_read_as_nhwc(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    train = []
    for i in range(1, 6):
        images, labels, batch = cifar_batch(rng, 4, b"labels")
        write_pickle(folder / f"data_batch_{i}", batch)
        train.append((images, labels))
    test_images, test_labels, batch = cifar_batch(rng, 3, b"labels")
    write_pickle(folder / "test_batch", batch)
    data = datasets.load_dataset("cifar10", data_dir=tmp_path)
    np.testing.assert_array_equal(data["x_train"], np.concatenate([t[0] for t in train]))
    np.testing.assert_array_equal(data["y_train"], np.concatenate([t[1] for t in train]))
    np.testing.assert_array_equal(data["x_test"], test_images)
    assert data["y_test"].dtype == np.int64 and list(data["y_test"]) == list(test_labels)


def test_cifar100_python_folder_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    images, labels, batch = cifar_batch(rng, 5, b"fine_labels")
    write_pickle(folder / "train", {**batch, b"coarse_labels": [0] * 5})
    write_pickle(folder / "test", batch)
    data = datasets.load_dataset("cifar100", data_dir=tmp_path)
    np.testing.assert_array_equal(data["x_train"], images)
    np.testing.assert_array_equal(data["y_test"], labels)


class RunsCode:
    """A pickle that would create a file when unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_cifar_pickle_with_code_is_refused_without_running_it(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    marker = tmp_path / "ran"
    write_pickle(folder / "train", {b"data": RunsCode(marker)})
    with pytest.raises(datasets.DataError, match=r"train: refusing to load .*open"):
        datasets.load_dataset("cifar100", data_dir=tmp_path)
    assert not marker.exists()


def test_truncated_cifar_file_and_missing_batch_are_named(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"\x80\x02}q")
    with pytest.raises(datasets.DataError, match="data_batch_1: not a CIFAR python batch"):
        datasets.load_dataset("cifar10", data_dir=tmp_path)
    _, _, batch = cifar_batch(np.random.default_rng(2), 2, b"labels")
    write_pickle(folder / "data_batch_1", batch)
    with pytest.raises(datasets.DataError, match="Missing CIFAR file .*data_batch_2"):
        datasets.load_dataset("cifar10", data_dir=tmp_path)


def svhn_split(rng, n):
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(1, 11, n)  # SVHN writes digit 0 as label 10
    return images, labels, {"X": images.transpose(1, 2, 3, 0), "y": labels[:, None]}


def test_svhn_mat_files_are_read_with_label_10_as_0(tmp_path):
    rng = np.random.default_rng(3)
    images, labels, mat = svhn_split(rng, 6)
    savemat(tmp_path / "train_32x32.mat", mat)
    test_images, test_labels, mat = svhn_split(rng, 4)
    savemat(tmp_path / "test_32x32.mat", mat)
    data = datasets.load_dataset("svhn", data_dir=tmp_path)
    np.testing.assert_array_equal(data["x_train"], images)
    np.testing.assert_array_equal(data["y_train"], np.where(labels == 10, 0, labels))
    np.testing.assert_array_equal(data["x_test"], test_images)
    assert 10 not in data["y_test"] and len(data["y_test"]) == 4


def test_svhn_missing_or_malformed_file_is_named(tmp_path):
    _, _, mat = svhn_split(np.random.default_rng(4), 2)
    savemat(tmp_path / "train_32x32.mat", mat)
    with pytest.raises(datasets.DataError, match="Missing SVHN file .*test_32x32.mat"):
        datasets.load_dataset("svhn", data_dir=tmp_path)
    savemat(tmp_path / "test_32x32.mat", {"X": np.zeros((32, 32, 3), np.uint8), "y": [[1]]})
    with pytest.raises(datasets.DataError, match=r"test_32x32.mat: expected variables 'X'"):
        datasets.load_dataset("svhn", data_dir=tmp_path)
    (tmp_path / "test_32x32.mat").write_bytes(b"not a mat file")
    with pytest.raises(datasets.DataError, match="test_32x32.mat: not a readable MATLAB"):
        datasets.load_dataset("svhn", data_dir=tmp_path)


def test_wrong_image_shape_and_label_count_are_named(tmp_path):
    np.savez(tmp_path / "cifar10.npz", x_train=np.zeros((2, 28, 28, 3), np.uint8),
             y_train=np.zeros(2), x_test=np.zeros((1, 32, 32, 3), np.uint8), y_test=np.zeros(1))
    with pytest.raises(datasets.DataError, match=r"x_train is uint8\(2, 28, 28, 3\), expected "
                                                 r"uint8 \(N, 32, 32, 3\)"):
        datasets.load_dataset("cifar10", data_dir=tmp_path)
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.zeros(3),
             x_test=np.zeros((1, 28, 28), np.uint8), y_test=np.zeros(1))
    with pytest.raises(datasets.DataError, match="2 x_train images but 3 labels"):
        datasets.load_dataset("mnist", data_dir=tmp_path)
