"""The checked reader of a packed one-bit archive: `read_manifest(path)`, `read_packed(path)`.

Nothing is trusted before it is checked, in this order: the zip directory (exactly the three
entries, each once, sizes bounded by the file), the manifest (every field typed and ranged, by
name), the .npy headers (against the entry sizes and the manifest counts), the tensor table (its
tensors tile the two blobs exactly), the values (finite floats, BN variances >= 0, each scale the
one its scale_mode gives). `packed_loader` builds a model from what passed.
"""

import collections
import io
import json
import math
import os
import zipfile
import zlib

import numpy as np

from keras_onebit.data import npy_header
from keras_onebit.errors import one_line
from keras_onebit.export.errors import ExportError
from keras_onebit.export.packed_format import (
    BIT_ORDER,
    CUSTOM_SCALE,
    ENTRIES,
    FORMAT_NAME,
    FORMAT_VERSION,
    SCALE_MODES,
    expected_scale,
)
from keras_onebit.fileio import regular_file

MAX_MANIFEST_BYTES = 4 << 20
MAX_AXES = 32
MAX_DIM = 1 << 62
TENSOR_KINDS = ("float32", "sign_bits")
SCALE_RTOL = 1e-6
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
              RuntimeError, zlib.error)


def _short(value, limit=60):
    """repr(value) cut to `limit` characters, for one-line messages."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _check_directory(path, infos, archive_bytes):
    """Raises unless the zip holds exactly ENTRIES, each once, with sizes the file can hold."""
    names = collections.Counter(info.filename for info in infos)
    missing = [n for n in ENTRIES if n not in names]
    if missing:
        raise ExportError(f"{path}: not a packed archive, missing entries {missing}.")
    duplicates = sorted(n for n, count in names.items() if count > 1)
    if duplicates:
        raise ExportError(f"{path}: duplicate zip entries {duplicates}: a packed archive "
                          "holds each entry once (readers disagree on which copy counts).")
    extra = sorted(set(names) - set(ENTRIES))
    if extra:
        raise ExportError(f"{path}: unexpected zip entries {_short(extra)}: a packed archive "
                          f"holds only {list(ENTRIES)}.")
    for info in infos:
        _check_entry_size(path, info, archive_bytes)


def _check_entry_size(path, info, archive_bytes):
    name = info.filename
    if info.compress_size > archive_bytes:
        raise ExportError(f"{path}: entry {name} declares {info.compress_size} stored bytes, "
                          f"more than the whole {archive_bytes}-byte file: corrupt or truncated.")
    if name == "manifest.json" and info.file_size > MAX_MANIFEST_BYTES:
        raise ExportError(f"{path}: entry manifest.json inflates to {info.file_size} bytes, "
                          f"more than the {MAX_MANIFEST_BYTES}-byte limit of a manifest.")
    if name.endswith(".npy") and info.file_size > info.compress_size:
        raise ExportError(f"{path}: entry {name} inflates {info.compress_size} stored bytes to "
                          f"{info.file_size}: the format stores .npy entries uncompressed.")


def _read_entry(path, zf, info):
    """The entry's bytes, never more than its (checked) declared size."""
    with zf.open(info) as f:
        data = f.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise ExportError(f"{path}: entry {info.filename} holds {len(data)} bytes, its header "
                          f"declares {info.file_size}: corrupt or truncated archive.")
    return data


def _read_entries(path, names=ENTRIES):
    """{name: bytes} of the archive's entries `names`, after the directory checks."""
    path = regular_file(path, "a .onebit archive", ExportError)
    try:
        archive_bytes = os.path.getsize(path)
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            _check_directory(path, infos, archive_bytes)
            return {info.filename: _read_entry(path, zf, info)
                    for info in infos if info.filename in names}
    except ExportError:
        raise
    except FileNotFoundError as e:
        raise ExportError(f"{path}: no such file.") from e
    except ZIP_ERRORS as e:
        raise ExportError(f"{path}: corrupt or truncated archive ({type(e).__name__}: "
                          f"{one_line(e)}).") from e


def _unique_keys(pairs):
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicate = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"duplicate key {_short(duplicate)}")
    return dict(pairs)


def _is_count(value):
    """A JSON integer >= 0 (not a bool, a float or a string)."""
    return type(value) is int and 0 <= value < MAX_DIM


def _is_shape(value):
    return (type(value) is list and len(value) <= MAX_AXES
            and all(_is_count(d) for d in value))


def _is_scale_shape(value):
    return _is_shape(value) and len(value) <= 1


def _is_text(value):
    return type(value) is str


def _is_scale_mode(value):
    if type(value) is not str:
        return False
    if value in SCALE_MODES:
        return True
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _field(path, where, record, key, valid, what):
    """record[key] if `valid`, else an ExportError naming `where` and the field."""
    if key not in record:
        raise ExportError(f"{path}: manifest.json {where} lacks field {key!r}.")
    value = record[key]
    if not valid(value):
        raise ExportError(f"{path}: manifest.json {where} field {key!r} must be {what}, "
                          f"got {_short(value)}.")
    return value


def _tensor_where(index, entry):
    name = entry.get("path") if isinstance(entry, dict) else None
    return f"tensors[{index}]" + (f" ({name})" if isinstance(name, str) else "")


def _check_tensor_fields(path, index, entry):
    """Type and range of every field of one tensor table entry."""
    where = _tensor_where(index, entry)
    if not isinstance(entry, dict):
        raise ExportError(f"{path}: manifest.json {where} must be an object, got "
                          f"{_short(entry)}.")
    count = "an integer >= 0"
    _field(path, where, entry, "path", _is_text, "a string")
    _field(path, where, entry, "layer", _is_text, "a string")
    if "index" in entry:
        _field(path, where, entry, "index", lambda v: type(v) is int and v == index,
               f"its position {index}")
    if "layer_type" in entry:
        _field(path, where, entry, "layer_type", lambda v: v is None or _is_text(v),
               "a string or null")
    _field(path, where, entry, "shape", _is_shape,
           f"a list of at most {MAX_AXES} integers >= 0")
    kind = _field(path, where, entry, "kind", _is_text, "a string")
    if kind not in TENSOR_KINDS:
        raise ExportError(f"{path}: manifest.json {where} has unknown tensor kind "
                          f"{_short(kind)}: expected one of {list(TENSOR_KINDS)}.")
    if kind == "float32":
        _field(path, where, entry, "offset", _is_count, count)
        if "dtype" in entry:
            _field(path, where, entry, "dtype", _is_text, "a string")
        return
    for key in ("bits_offset", "bits_nbytes", "scale_offset"):
        _field(path, where, entry, key, _is_count, count)
    _field(path, where, entry, "scale_shape", _is_scale_shape,
           "[] (one scale) or [C_out] (one per output channel)")
    _field(path, where, entry, "scale_mode", _is_scale_mode,
           "'he', 'mean_abs', 'none', 'custom' or a finite number as a string")


def _check_manifest(path, manifest):
    """Raises unless the manifest is a version-1 archive's, every field well typed."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ExportError(f"{path}: manifest.json does not describe a {FORMAT_NAME} archive.")
    version = manifest.get("version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise ExportError(
            f"{path}: unsupported format version {_short(version)}; this reader reads version "
            f"{FORMAT_VERSION}."
        )
    for key in ("model", "tensors", "bits_nbytes", "floats_count"):
        if key not in manifest:
            raise ExportError(f"{path}: manifest.json lacks {key!r}.")
    where = "top level"
    _field(path, where, manifest, "model", lambda v: isinstance(v, dict), "an object")
    _field(path, where, manifest, "tensors", lambda v: isinstance(v, list), "a list")
    _field(path, where, manifest, "bits_nbytes", _is_count, "an integer >= 0")
    _field(path, where, manifest, "floats_count", _is_count, "an integer >= 0")
    if "bit_order" in manifest:
        _field(path, where, manifest, "bit_order", lambda v: v == BIT_ORDER, repr(BIT_ORDER))
    if "metadata" in manifest:
        _field(path, where, manifest, "metadata", lambda v: isinstance(v, dict), "an object")
    for index, entry in enumerate(manifest["tensors"]):
        _check_tensor_fields(path, index, entry)


def _parse_manifest(path, raw):
    try:
        manifest = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except RecursionError as e:
        raise ExportError(f"{path}: manifest.json is nested too deeply to read.") from e
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError is a ValueError
        raise ExportError(f"{path}: manifest.json is corrupt ({one_line(e)}).") from e
    _check_manifest(path, manifest)
    return manifest


def _npy_header(path, name, f):
    """(shape, dtype) from the .npy header at the start of `f` (no data read)."""
    try:
        shape, _, dtype = npy_header(f)
    except (ValueError, EOFError, OSError, SyntaxError, TypeError) as e:
        raise ExportError(f"{path}: entry {name} is corrupt or truncated "
                          f"({one_line(e)}).") from e
    return shape, dtype


def _parse_npy(path, name, raw, dtype, count):
    """The 1-D array of an entry, its header checked against the entry and the
    manifest before anything is allocated (a view of `raw`, no copy)."""
    f = io.BytesIO(raw)
    shape, got = _npy_header(path, name, f)
    if got != np.dtype(dtype) or len(shape) != 1 or shape[0] != count:
        raise ExportError(
            f"{path}: entry {name} is {got}{tuple(shape)}, the manifest expects "
            f"{np.dtype(dtype)}({count},)."
        )
    data_bytes = len(raw) - f.tell()
    if count * got.itemsize != data_bytes:
        raise ExportError(
            f"{path}: entry {name} declares {count} values of {got.itemsize} bytes but holds "
            f"{data_bytes} bytes of data: corrupt or truncated."
        )
    return np.frombuffer(raw, dtype=got, count=count, offset=f.tell())


def _ranges(manifest):
    """([(start, count, where)] into floats, [(start, count, where)] into bits)."""
    floats, bits = [], []
    for index, entry in enumerate(manifest["tensors"]):
        where = _tensor_where(index, entry)
        if entry["kind"] == "float32":
            floats.append((entry["offset"], math.prod(entry["shape"]), where))
        else:
            bits.append((entry["bits_offset"], entry["bits_nbytes"], where))
            floats.append((entry["scale_offset"], math.prod(entry["scale_shape"]),
                           f"{where} scale"))
    return floats, bits


def _check_tiling(path, blob, ranges, size):
    """Raises unless `ranges` cover [0, size) of `blob` exactly, one after the other."""
    position = 0
    for start, count, where in sorted(ranges, key=lambda r: (r[0], r[1])):
        if start + count > size:
            raise ExportError(f"{path}: {where} points outside its blob (truncated archive?): "
                              f"elements {start}..{start + count} of {blob} ({size}).")
        if start != position:
            problem = "overlaps the tensor before it" if start < position else "leaves a gap"
            raise ExportError(f"{path}: {where} {problem} in {blob} at element {start} "
                              f"(expected {position}): tensors must follow one another.")
        position = start + count
    if position != size:
        raise ExportError(f"{path}: the tensors use {position} elements of {blob}, which "
                          f"holds {size}.")


def _check_finite(path, manifest, floats):
    finite = np.isfinite(floats)
    if finite.all():
        return
    first = int(np.argmin(finite))
    for start, count, where in _ranges(manifest)[0]:
        if start <= first < start + count:
            raise ExportError(f"{path}: {where} holds {floats[first]} at element "
                              f"{first - start}: stored values must be finite.")
    raise ExportError(f"{path}: floats.npy holds {floats[first]} at element {first}: stored "
                      "values must be finite.")


def _check_float_tensor(path, index, entry, value):
    where = _tensor_where(index, entry)
    if entry["path"].endswith("moving_variance") and value.size and value.min() < 0:
        first = int(np.argmax(value < 0))
        raise ExportError(f"{path}: {where} holds the negative variance {value[first]} at "
                          f"element {first}: BN variances must be >= 0.")
    if entry.get("dtype") == "bool" and not np.isin(value, (0.0, 1.0)).all():
        raise ExportError(f"{path}: {where} is a boolean stored as float32 and must hold "
                          "only 0 and 1.")


def _check_scale(path, index, entry, alpha):
    where = _tensor_where(index, entry)
    mode, shape = entry["scale_mode"], entry["shape"]
    per_channel = [shape[-1]] if shape else None
    want_shape = per_channel if mode == "mean_abs" else []
    if mode == CUSTOM_SCALE and entry["scale_shape"] == per_channel:
        want_shape = per_channel  # a subclass's scale: per layer or per channel
    if entry["scale_shape"] != want_shape:
        raise ExportError(f"{path}: {where} of layer {entry['layer']!r} has scale_shape "
                          f"{entry['scale_shape']}; scale_mode {mode!r} needs {want_shape}.")
    if mode in ("mean_abs", CUSTOM_SCALE):
        if alpha.size and not (alpha > 0).all():
            first = int(np.argmin(alpha > 0))
            raise ExportError(f"{path}: {where} of layer {entry['layer']!r} has the {mode} "
                              f"scale {alpha[first]} at channel {first}: it must be > 0.")
        return
    try:
        want = expected_scale(mode, shape)
    except ExportError as e:
        raise ExportError(f"{path}: {where} of layer {entry['layer']!r}: {e}") from None
    if not np.isfinite(want):
        raise ExportError(f"{path}: {where} of layer {entry['layer']!r} has scale_mode "
                          f"{mode!r}, which is not a finite float32.")
    got = np.float32(alpha.reshape(()))
    if abs(float(got) - float(want)) > SCALE_RTOL * abs(float(want)):
        rule = f"sqrt(2 / fan_in) = {want}" if mode == "he" else f"{want}"
        raise ExportError(f"{path}: {where} of layer {entry['layer']!r} stores the scale "
                          f"{got} but its scale_mode {mode!r} gives {rule}.")


def _check_values(path, manifest, bits, floats):
    """Finite floats, BN variances >= 0, switches 0/1, each scale its mode's."""
    _check_finite(path, manifest, floats)
    for index, entry in enumerate(manifest["tensors"]):
        if entry["kind"] == "float32":
            count = math.prod(entry["shape"])
            value = floats[entry["offset"]:entry["offset"] + count]
            _check_float_tensor(path, index, entry, value)
        else:
            count = math.prod(entry["scale_shape"])
            alpha = floats[entry["scale_offset"]:entry["scale_offset"] + count]
            _check_scale(path, index, entry, alpha)


def read_manifest(path):
    """The validated manifest dict of an archive (architecture, tensors, metadata).

    Args:
        path: a packed archive (`.onebit`).

    Returns:
        The manifest dict, every field type- and range-checked.

    Raises:
        ExportError: a missing, corrupt or malformed archive (names the entry and field).
    """
    return _parse_manifest(path, _read_entries(path, ("manifest.json",))["manifest.json"])


def read_packed(path):
    """(manifest, bits, floats) of an archive, every entry and value validated.

    Args:
        path: a packed archive (`.onebit`).

    Returns:
        The manifest dict, the uint8 sign bits and the float32 values (read-only
        arrays). Each tensor's range tiles its blob; each float is finite; each
        scale is the one its scale_mode gives. Sign-bit counts against kernel
        shapes are checked by `load_packed` (with the architecture's shapes).

    Raises:
        ExportError: naming the entry, tensor or field that is wrong.
    """
    entries = _read_entries(path)
    manifest = _parse_manifest(path, entries["manifest.json"])
    bits = _parse_npy(path, "bits.npy", entries["bits.npy"], np.uint8, manifest["bits_nbytes"])
    floats = _parse_npy(path, "floats.npy", entries["floats.npy"], "<f4",
                        manifest["floats_count"])
    float_ranges, bit_ranges = _ranges(manifest)
    _check_tiling(path, "floats.npy", float_ranges, floats.size)
    _check_tiling(path, "bits.npy", bit_ranges, bits.size)
    _check_values(path, manifest, bits, floats)
    return manifest, bits, floats
