"""Hostile packed archives (issue 11): bounded reading, checked values, typed errors.

Each archive is a small real model's, rewritten in tmp_path; each test asserts the
error class, the field or tensor the message names, and that no file changed.
"""

import io
import json
import os
import pathlib
import struct
import subprocess
import sys
import textwrap
import zipfile

import keras
import numpy as np
import pytest

import keras_onebit as kob
from keras_onebit import export
from keras_onebit.errors import Error
from keras_onebit.export import packed
from tests.conftest import tree_state

ROOT = pathlib.Path(__file__).resolve().parents[1]


def small_model():
    """A 1-bit "he" dense layer, a BN and a float dense layer: an archive of ~1.5 kB."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6,), name="pixels")
    x = kob.BinaryDense(4, name="binary")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    return keras.Model(inputs, outputs, name="small")


@pytest.fixture(scope="module")
def archive():
    """The small model's archive bytes."""
    return packed.packed_bytes(small_model())


def entries_of(data):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def with_manifest(data, change):
    """The archive with `change(manifest)` applied (it may return a replacement)."""
    entries = entries_of(data)
    manifest = json.loads(entries["manifest.json"])
    manifest = change(manifest) or manifest
    entries["manifest.json"] = json.dumps(manifest).encode()
    return packed._zip_bytes(entries)


def with_floats(data, change):
    """The archive with `change(floats, manifest)` applied to a copy of floats.npy."""
    entries = entries_of(data)
    manifest = json.loads(entries["manifest.json"])
    floats = np.load(io.BytesIO(entries["floats.npy"])).copy()
    change(floats, manifest)
    entries["floats.npy"] = packed._npy_bytes(floats.astype("<f4"))
    return packed._zip_bytes(entries)


def tensor(manifest, path):
    return next(t for t in manifest["tensors"] if t["path"] == path)


@pytest.fixture
def hostile(tmp_path, monkeypatch):
    """Writes a hostile archive into tmp_path/target and checks, after the test,
    that no file changed there, in the shipped models or in a sandboxed home."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    target = tmp_path / "target"
    target.mkdir()
    roots = (tmp_path, ROOT / "pretrained")
    written = {}

    def write(data, name="hostile.onebit"):
        path = target / name
        path.write_bytes(data)
        written["before"] = tree_state(*roots)
        return path

    yield write
    if "before" in written:
        assert tree_state(*roots) == written["before"]


def refused(path, *names):
    """The ExportError of loading `path`; asserts each of `names` is in its message."""
    with pytest.raises(export.ExportError) as e:
        export.load_packed(path)
    message = str(e.value)
    assert isinstance(e.value, Error) and "\n" not in message
    assert str(path) in message
    for name in names:
        assert name in message, message
    return message


def test_small_archive_round_trips(archive, tmp_path):
    path = tmp_path / "ok.onebit"
    path.write_bytes(archive)
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    model = small_model()
    assert np.array_equal(model.predict(x, verbose=0),
                          export.load_packed(path).predict(x, verbose=0))


# ----------------------------------------------------------------- bounded reading


def test_zip_bomb_manifest_is_refused_by_its_declared_size(archive, hostile):
    def pad(manifest):
        manifest["metadata"] = {"pad": " " * (64 << 20)}  # deflates to ~64 kB

    path = hostile(with_manifest(archive, pad))
    assert path.stat().st_size < 200_000
    refused(path, "manifest.json", "inflates to")


def test_manifest_with_a_lying_size_is_never_read_past_it(archive, hostile):
    """Headers that declare 1 kB for a manifest inflating to 64 MB: zipfile stops
    at the declared size and the CRC no longer matches."""
    def pad(manifest):
        manifest["metadata"] = {"pad": " " * (64 << 20)}

    data = bytearray(with_manifest(archive, pad))
    name = b"manifest.json"
    for signature, size_at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            name_at = start + (30 if signature == b"PK\x03\x04" else 46)
            if data[name_at:name_at + len(name)] == name:
                data[start + size_at:start + size_at + 4] = struct.pack("<I", 1024)
            start += 4
    path = hostile(bytes(data))
    refused(path, "corrupt or truncated")


def test_oversized_declared_architecture_fails_fast_in_little_memory(hostile, tmp_path_factory):
    """A ~1 kB archive whose architecture declares Dense(8192) on a 65536-wide
    input (2 GB of kernel) fails before allocating it: < 200 MB of peak memory more,
    measured in a child (the time it takes is the bench's business, not a test's)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,), name="wide")
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
    data = packed.packed_bytes(model)
    honest = hostile(data, "honest.onebit")

    def widen(manifest):
        text = json.dumps(manifest["model"])
        text = text.replace("[null, 4]", "[null, 65536]").replace('"units": 2', '"units": 8192')
        assert "65536" in text and "8192" in text
        manifest["model"] = json.loads(text)

    path = hostile(with_manifest(data, widen))
    assert path.stat().st_size < 1500
    script = textwrap.dedent(f"""
        import json, resource, time
        from keras_onebit import export
        export.load_packed({str(honest)!r})  # warm up TensorFlow and Keras
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        try:
            export.load_packed({str(path)!r})
            error = None
        except export.ExportError as e:
            error = str(e)
        seconds = time.perf_counter() - start
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(json.dumps({{"error": error, "seconds": seconds, "grown_kb": grown}}))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
           "HOME": str(tmp_path_factory.mktemp("child_home"))}  # Keras and matplotlib caches
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"hostile architecture: {result['seconds']:.3f} s, "
          f"max RSS +{result['grown_kb'] / 1024:.1f} MB")
    assert result["error"] is not None
    assert "more parameters than the archive holds" in result["error"]
    assert "dense/kernel" in result["error"] and "(65536, 8192)" in result["error"]
    assert result["grown_kb"] < 200 * 1024


def npy_header_only(dtype, count):
    """A .npy v1.0 header declaring `count` values, with no data after it."""
    return packed._npy_bytes(np.zeros(0, dtype)).replace(b"(0,)", f"({count},)".encode())[:128]


def test_oversized_npy_header_is_refused_before_allocation(archive, hostile):
    huge = 1 << 42  # 4 TiB
    entries = entries_of(archive)
    entries["bits.npy"] = npy_header_only(np.uint8, huge)
    path = hostile(packed._zip_bytes(entries), "header.onebit")
    refused(path, "bits.npy", f"uint8({huge},)", "the manifest expects")
    # and with the manifest agreeing with the header: the entry's own size refuses it
    manifest = json.loads(entries["manifest.json"])
    manifest["bits_nbytes"] = huge
    entries["manifest.json"] = json.dumps(manifest).encode()
    path = hostile(packed._zip_bytes(entries), "agreeing.onebit")
    refused(path, "bits.npy", f"declares {huge} values", "holds 0 bytes")


def test_compressed_npy_entry_is_refused(archive, hostile):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, raw in sorted(entries_of(archive).items()):
            zf.writestr(name, raw, compress_type=zipfile.ZIP_DEFLATED)
    refused(hostile(buf.getvalue()), "bits.npy", "uncompressed")


def test_duplicate_and_extra_entries_are_refused(archive, hostile):
    entries = entries_of(archive)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        for name in sorted(entries):
            zf.writestr(name, entries[name])
        zf.writestr("manifest.json", b'{"format": "other"}')
    refused(hostile(buf.getvalue(), "dup.onebit"), "duplicate zip entries", "manifest.json")
    extra = packed._zip_bytes({**entries, "../escape.txt": b"x"})
    refused(hostile(extra, "extra.onebit"), "unexpected zip entries", "../escape.txt")


# ------------------------------------------------------------------- typed fields


def set_field(path, key, value):
    def change(manifest):
        tensor(manifest, path)[key] = value
    return change


def drop_field(path, key):
    def change(manifest):
        del tensor(manifest, path)[key]
    return change


def set_top(key, value):
    def change(manifest):
        manifest[key] = value
    return change


@pytest.mark.parametrize("change, names", [
    (set_field("bn/gamma", "offset", "12"), ["bn/gamma", "'offset'", "'12'"]),
    (set_field("bn/gamma", "offset", 1.5), ["bn/gamma", "'offset'", "1.5"]),
    (set_field("bn/gamma", "offset", True), ["bn/gamma", "'offset'", "True"]),
    (set_field("bn/gamma", "offset", -4), ["bn/gamma", "'offset'", "-4"]),
    (drop_field("bn/beta", "kind"), ["bn/beta", "lacks field 'kind'"]),
    (set_field("bn/beta", "kind", "int4"), ["bn/beta", "unknown tensor kind 'int4'"]),
    (set_field("binary/kernel", "scale_shape", [-1]), ["binary/kernel", "'scale_shape'"]),
    (set_field("binary/kernel", "scale_shape", "[]"), ["binary/kernel", "'scale_shape'"]),
    (set_field("head/kernel", "shape", [-1, 3]), ["head/kernel", "'shape'", "[-1, 3]"]),
    (set_field("head/kernel", "shape", [4.0, 3]), ["head/kernel", "'shape'"]),
    (set_field("binary/kernel", "bits_offset", None), ["binary/kernel", "'bits_offset'"]),
    (set_field("binary/kernel", "bits_nbytes", "4"), ["binary/kernel", "'bits_nbytes'"]),
    (set_field("binary/kernel", "scale_mode", "huge"), ["binary/kernel", "'scale_mode'"]),
    (set_field("binary/kernel", "scale_mode", "nan"), ["binary/kernel", "'scale_mode'"]),
    (drop_field("binary/kernel", "scale_offset"), ["binary/kernel", "'scale_offset'"]),
    (set_field("head/bias", "path", 7), ["tensors[", "'path'"]),
    (set_field("head/bias", "index", 0), ["head/bias", "'index'"]),
    (set_top("bits_nbytes", "abc"), ["top level", "'bits_nbytes'", "'abc'"]),
    (set_top("floats_count", 1.5), ["top level", "'floats_count'"]),
    (set_top("tensors", {"a": 1}), ["top level", "'tensors'"]),
    (set_top("model", []), ["top level", "'model'"]),
    (set_top("version", True), ["unsupported format version True"]),
    (set_top("metadata", "x"), ["'metadata'"]),
])
def test_wrong_typed_fields_are_named(archive, hostile, change, names):
    refused(hostile(with_manifest(archive, change)), *names)


def test_deeply_nested_and_duplicate_key_json(archive, hostile):
    entries = entries_of(archive)
    entries["manifest.json"] = b"[" * 200_000 + b"]" * 200_000
    refused(hostile(packed._zip_bytes(entries), "deep.onebit"), "manifest.json",
            "nested too deeply")
    text = entries_of(archive)["manifest.json"].decode()
    entries["manifest.json"] = ('{"version": 2, ' + text[1:]).encode()
    refused(hostile(packed._zip_bytes(entries), "twice.onebit"), "manifest.json",
            "duplicate key 'version'")


def test_tensors_must_tile_the_blobs(archive, hostile):
    def overlap(manifest):
        tensor(manifest, "bn/beta")["offset"] = tensor(manifest, "bn/gamma")["offset"]

    refused(hostile(with_manifest(archive, overlap), "overlap.onebit"), "bn/", "overlaps")

    def past_end(manifest):
        tensor(manifest, "head/bias")["offset"] += 100

    refused(hostile(with_manifest(archive, past_end), "end.onebit"), "head/bias",
            "points outside")


def test_layer_names_must_match_the_architecture(archive, hostile):
    refused(hostile(with_manifest(archive, set_field("bn/gamma", "layer", "head"))),
            "bn/gamma", "belongs to layer 'head'", "'bn'")


# ------------------------------------------------------------------ values checked


def test_negated_he_scale_is_refused_naming_the_layer(archive, hostile):
    def negate(floats, manifest):
        entry = tensor(manifest, "binary/kernel")
        floats[entry["scale_offset"]] *= -1

    message = refused(hostile(with_floats(archive, negate)), "layer 'binary'",
                      "binary/kernel", "sqrt(2 / fan_in)")
    assert "stores the scale -0.57735" in message  # -sqrt(2 / 6)


def test_scale_mode_must_match_its_value_and_the_architecture(archive, hostile):
    def double(floats, manifest):
        floats[tensor(manifest, "binary/kernel")["scale_offset"]] *= 2

    refused(hostile(with_floats(archive, double), "double.onebit"), "layer 'binary'",
            "scale_mode 'he'")

    def none_mode(floats, manifest):
        floats[tensor(manifest, "binary/kernel")["scale_offset"]] = 1.0

    data = with_manifest(with_floats(archive, none_mode),
                         set_field("binary/kernel", "scale_mode", "none"))
    refused(hostile(data, "none.onebit"), "binary/kernel", "scale_mode 'none'",
            "layer 'binary' of the architecture has scale 'he'")

    def number(floats, manifest):
        floats[tensor(manifest, "binary/kernel")["scale_offset"]] = 0.25

    data = with_manifest(with_floats(archive, number),
                         set_field("binary/kernel", "scale_mode", "0.5"))
    refused(hostile(data, "number.onebit"), "binary/kernel", "scale_mode '0.5'", "0.25")


def test_mean_abs_scales_must_be_positive(tmp_path, hostile):
    keras.utils.set_random_seed(2)
    inputs = keras.Input((5,))
    outputs = kob.BinaryDense(3, scale="mean_abs", name="pc")(inputs)
    data = packed.packed_bytes(keras.Model(inputs, outputs))
    ok = tmp_path / "pc.onebit"
    ok.write_bytes(data)
    export.load_packed(ok)

    def zero(floats, manifest):
        floats[tensor(manifest, "pc/kernel")["scale_offset"] + 1] = 0.0

    refused(hostile(with_floats(data, zero)), "pc/kernel", "channel 1", "must be > 0")


@pytest.mark.parametrize("bad", [np.nan, -np.inf, -0.5])
def test_bad_bn_variance_is_refused_naming_the_tensor(archive, hostile, bad):
    def poison(floats, manifest):
        floats[tensor(manifest, "bn/moving_variance")["offset"] + 2] = bad

    message = refused(hostile(with_floats(archive, poison)), "bn/moving_variance",
                      "element 2")
    assert ("finite" if not np.isfinite(bad) else "variances must be >= 0") in message


def test_nan_kernel_value_is_named(archive, hostile):
    def poison(floats, manifest):
        floats[tensor(manifest, "head/kernel")["offset"] + 5] = np.nan

    refused(hostile(with_floats(archive, poison)), "head/kernel", "element 5", "finite")


def test_read_manifest_checks_fields_without_the_blobs(archive, hostile):
    path = hostile(with_manifest(archive, set_field("bn/gamma", "offset", "12")))
    with pytest.raises(export.ExportError, match=r"bn/gamma.*'offset'"):
        export.read_manifest(path)
