"""The packed one-bit archive: exact round trip, size, bad input, determinism."""

import io
import json
import os
import zipfile

import keras
import numpy as np
import pytest

import keras_onebit as kob
from keras_onebit import export
from keras_onebit.export import packed


@pytest.fixture(scope="module")
def wrn(cifar10):
    keras.utils.set_random_seed(0)
    model = kob.models.wrn(8, 1)
    model(cifar10["x_train"][:256].astype("float32"), training=True)  # BN statistics move
    return model


@pytest.fixture(scope="module")
def images(cifar10):
    return cifar10["x_test"][:32].astype("float32")


def per_channel_model():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 3))
    x = kob.BinaryConv2D(5, 3, scale="mean_abs", padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Flatten()(x)
    x = kob.BinaryDense(7, scale="mean_abs", use_bias=True)(x)
    x = kob.BinaryDense(3, binary=False)(x)
    return keras.Model(inputs, x)


def test_round_trip_is_exact(wrn, images, tmp_path):
    path = export.save_packed(wrn, tmp_path / "m.onebit", metadata={"note": "x"})
    back = export.load_packed(path)
    assert np.array_equal(wrn.predict(images, verbose=0), back.predict(images, verbose=0))
    for a, b in zip(wrn.layers, back.layers, strict=True):
        if kob.layers.is_binary(a):
            assert np.array_equal(a.sign_bits(), b.sign_bits())
            assert np.array_equal(np.asarray(a.forward_kernel()), np.asarray(b.forward_kernel()))
    assert export.read_manifest(path)["metadata"] == {"note": "x"}


def test_round_trip_per_channel_scales_exact(tmp_path):
    model = per_channel_model()
    x = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 3)).astype("float32")
    back = export.load_packed(export.save_packed(model, tmp_path / "pc.onebit"))
    assert np.array_equal(np.asarray(model(x)), np.asarray(back(x)))


def test_bits_layout_is_documented_packbits(wrn, tmp_path):
    path = export.save_packed(wrn, tmp_path / "m.onebit")
    with np.load(path, allow_pickle=False) as npz:  # npz-compatible
        bits, floats = npz["bits"], npz["floats"]
    manifest = export.read_manifest(path)
    entry = next(t for t in manifest["tensors"] if t["layer"] == "stem_conv")
    layer = wrn.get_layer("stem_conv")
    want = np.packbits(layer.sign_bits().reshape(-1), bitorder="big")
    got = bits[entry["bits_offset"]:entry["bits_offset"] + entry["bits_nbytes"]]
    assert np.array_equal(got, want)
    assert floats[entry["scale_offset"]] == np.float32(layer.kernel_alpha())


def test_size_within_two_percent_of_one_bit_limit(tmp_path):
    model = kob.models.wrn_16_4()
    path = export.save_packed(model, tmp_path / "w.onebit")
    limit = export.limit_bytes(model)
    assert limit == kob.summary(model, print_fn=lambda *a: None)["onebit_bytes"]
    assert os.path.getsize(path) <= 1.02 * limit


def test_same_model_gives_identical_bytes(wrn, tmp_path):
    a = export.save_packed(wrn, tmp_path / "a.onebit")
    b = export.save_packed(wrn, tmp_path / "b.onebit")
    assert open(a, "rb").read() == open(b, "rb").read()
    with zipfile.ZipFile(a) as zf:
        assert zf.namelist() == sorted(zf.namelist())
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_truncated_archive(wrn, tmp_path):
    data = packed.packed_bytes(wrn)
    for cut in (10, len(data) // 2, len(data) - 30):
        path = tmp_path / f"cut{cut}.onebit"
        path.write_bytes(data[:cut])
        with pytest.raises(export.ExportError, match="corrupt or truncated|missing entries"):
            export.load_packed(path)


def test_corrupt_archive(wrn, tmp_path):
    data = bytearray(packed.packed_bytes(wrn))
    data[200] ^= 0xFF  # inside bits.npy: the CRC no longer matches
    path = tmp_path / "bad.onebit"
    path.write_bytes(bytes(data))
    with pytest.raises(export.ExportError, match="corrupt"):
        export.load_packed(path)
    (tmp_path / "junk.onebit").write_bytes(b"not a zip file at all")
    with pytest.raises(export.ExportError, match="corrupt or truncated"):
        export.load_packed(tmp_path / "junk.onebit")


def rewrite(data, change):
    """The archive with its manifest changed by `change(manifest)`."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(entries["manifest.json"])
    change(manifest)
    entries["manifest.json"] = json.dumps(manifest).encode()
    return packed._zip_bytes(entries)


def test_wrong_version(wrn, tmp_path):
    path = tmp_path / "v.onebit"
    path.write_bytes(rewrite(packed.packed_bytes(wrn), lambda m: m.update(version=99)))
    with pytest.raises(export.ExportError, match="unsupported format version 99"):
        export.load_packed(path)


def test_missing_entry(wrn, tmp_path):
    with zipfile.ZipFile(io.BytesIO(packed.packed_bytes(wrn))) as zf:
        entries = {n: zf.read(n) for n in zf.namelist() if n != "floats.npy"}
    path = tmp_path / "m.onebit"
    path.write_bytes(packed._zip_bytes(entries))
    with pytest.raises(export.ExportError, match="missing entries.*floats.npy"):
        export.load_packed(path)


def test_shape_mismatch_names_layer_and_shapes(wrn, tmp_path):
    def widen(manifest):
        entry = next(t for t in manifest["tensors"] if t["path"] == "head_conv/kernel")
        entry["shape"] = [1, 1, 64, 11]

    path = tmp_path / "s.onebit"
    path.write_bytes(rewrite(packed.packed_bytes(wrn), widen))
    with pytest.raises(export.ExportError,
                       match=r"layer 'head_conv'.*\(1, 1, 64, 11\).*\(1, 1, 64, 10\)"):
        export.load_packed(path)


def test_unwritable_path_fails_before_work(wrn, tmp_path):
    with pytest.raises(export.ExportError, match="does not exist"):
        export.save_packed(wrn, tmp_path / "no" / "such" / "dir" / "m.onebit")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root can write anyway
            with pytest.raises(export.ExportError, match="not writable"):
                export.save_packed(wrn, locked / "m.onebit")
    finally:
        locked.chmod(0o700)


def test_nothing_half_written(wrn, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    target = tmp_path / "m.onebit"
    target.write_bytes(b"old")
    monkeypatch.setattr(packed, "_zip_bytes", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        export.save_packed(wrn, target)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onebit"]


def test_lambda_layer_is_named(tmp_path):
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda t: t * 2, name="doubler")(inputs)
    with pytest.raises(export.ExportError, match="'doubler' of type Lambda"):
        export.save_packed(keras.Model(inputs, outputs), tmp_path / "l.onebit")
