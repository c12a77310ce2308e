"""The packed one-bit archive: `save_packed(model, path)` / `load_packed(path)`.

A zip file (entries stored, fixed timestamps, sorted names; also readable by
`np.load`) holding three entries:

- `bits.npy`: uint8 (N,), every binary kernel's sign bits, 8 per byte,
  `np.packbits(kernel >= 0, bitorder="big")` over the kernel flattened in C
  order (Keras HWIO / IO): the first weight is the most significant bit of
  its first byte, bit 1 = +1, each kernel starting on a byte boundary with
  zero padding bits at its end.
- `floats.npy`: float32 little-endian (M,), every scale and every other
  parameter (BN statistics, real-valued layers) one after the other.
- `manifest.json`: format name and version, the Keras architecture
  (`model.to_json()`), and per variable its path, layer, layer type, shape,
  kind and offsets into the two blobs; optional user metadata.

`docs/FORMAT.md` describes the bytes in full. Loading uses
`allow_pickle=False` and checks the version, each entry, and each shape.
A loaded binary kernel holds `+alpha` where the bit is 1 and `-alpha` where it
is 0: its signs, and so the model's outputs, are exactly the original's; the
latent magnitudes (only needed to resume training) are not kept.
"""

import collections
import io
import json
import math
import os
import zipfile
import zlib

import keras
import numpy as np

from keras_onebit import quantizers, walk
from keras_onebit.data import npy_header
from keras_onebit.errors import one_line
from keras_onebit.export.errors import ExportError
from keras_onebit.export.files import atomic_write, check_writable
from keras_onebit.fileio import regular_file
from keras_onebit.latent import restore_kernel
from keras_onebit.layers import is_binary

FORMAT_NAME = "keras_onebit.packed"
FORMAT_VERSION = 1
BIT_ORDER = "big"
ENTRIES = ("bits.npy", "floats.npy", "manifest.json")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
ZIP_ENTRY_OVERHEAD = 30 + 46 + 2 * len("manifest.json")  # per entry: local + central headers


def all_layers(model):
    """Every layer of `model`, nested models flattened, in a stable order."""
    return list(walk.iter_layers(model, containers=True))


def binary_kernels(model, switched_off_too=False):
    """{id(kernel): layer} for every one-bit layer of `model` (with
    `switched_off_too`, also the switchable layers not switched on yet)."""
    return {id(layer.kernel): layer for layer in all_layers(model)
            if is_binary(layer) or (switched_off_too and getattr(layer, "switchable", False))}


def architecture_json(model):
    """The model's Keras architecture as a JSON-ready dict."""
    for layer in all_layers(model):
        if isinstance(layer, keras.layers.Lambda):
            raise ExportError(
                f"Layer {layer.name!r} of type {type(layer).__name__} holds Python code and "
                "cannot be stored in a packed archive; use a registered custom layer."
            )
    try:
        return json.loads(model.to_json())
    except Exception as e:  # subclassed models without get_config, unserializable args
        raise ExportError(
            f"Model {model.name!r} of type {type(model).__name__} has no serializable "
            f"architecture ({type(e).__name__}: {e})."
        ) from e


def _npy_bytes(array):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(array), version=(1, 0),
                              allow_pickle=False)
    return buf.getvalue()


def _zip_bytes(entries):
    """Deterministic zip: sorted names, fixed dates and permissions."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.create_system = 3
            info.external_attr = 0o644 << 16
            deflate = name.endswith(".json")
            info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
            zf.writestr(info, entries[name], compresslevel=9 if deflate else None)
    return buf.getvalue()


def pack_model(model, metadata=None):
    """(manifest dict, bits uint8 array, floats float32 array) of `model`."""
    architecture = architecture_json(model)
    if not model.built:
        raise ExportError(f"Model {model.name!r} is not built: build it before packing.")
    kernels = binary_kernels(model)
    owners = walk.weight_owners(model)
    bits, floats, tensors = [], [], []
    nbits = nfloats = 0
    for index, w in enumerate(model.weights):
        layer = owners.get(id(w))
        entry = {
            "index": index,
            "path": w.path,
            "layer": layer.name if layer is not None else w.path.rsplit("/", 1)[0],
            "layer_type": type(layer).__name__ if layer is not None else None,
            "shape": [int(d) for d in w.shape],
        }
        if id(w) in kernels:
            binary = kernels[id(w)]
            _check_stored_exactly(binary)
            packed = np.packbits(binary.sign_bits().reshape(-1), bitorder=BIT_ORDER)
            alpha = binary.kernel_alpha().astype("<f4").reshape(-1)
            entry.update(kind="sign_bits", bits_offset=nbits, bits_nbytes=int(packed.size),
                         scale_offset=nfloats, scale_shape=list(binary.kernel_alpha().shape),
                         scale_mode=scale_mode_of(binary.kernel_quantizer))
            bits.append(packed)
            nbits += packed.size
            floats.append(alpha)
            nfloats += alpha.size
        else:
            value = np.asarray(keras.ops.convert_to_numpy(w), dtype="<f4").reshape(-1)
            entry.update(kind="float32", offset=nfloats, dtype=str(w.dtype))
            floats.append(value)
            nfloats += value.size
        tensors.append(entry)
    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "bit_order": BIT_ORDER,
        "keras_version": keras.__version__,
        "model": architecture,
        "tensors": tensors,
        "bits_nbytes": int(nbits),
        "floats_count": int(nfloats),
        "metadata": metadata or {},
    }
    bits = np.concatenate(bits) if bits else np.zeros(0, np.uint8)
    floats = np.concatenate(floats) if floats else np.zeros(0, "<f4")
    return manifest, bits.astype(np.uint8), floats.astype("<f4")


def _check_stored_exactly(layer):
    """Refuses, before anything is written, a layer whose quantizer computes other
    than alpha * sign(W): its sign bits and scale would reload as another model."""
    error = layer.stored_kernel_error()
    if error:
        raise ExportError(
            f"Layer {layer.name!r}: its kernel quantizer {type(layer.kernel_quantizer).__name__}"
            f" computes a kernel other than alpha * sign(W) (off by up to {error:.3g}), so sign "
            "bits and a scale cannot store it; the TFLite formats float / int8 export it "
            "exactly, the .onebit archive cannot.")


def packed_bytes(model, metadata=None):
    """The archive's bytes (what `save_packed` writes)."""
    try:
        json.dumps(metadata or {})
    except TypeError as e:
        raise ExportError(f"metadata must be JSON-serializable: {e}") from e
    manifest, bits, floats = pack_model(model, metadata)
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return _zip_bytes({
        "bits.npy": _npy_bytes(bits),
        "floats.npy": _npy_bytes(floats),
        "manifest.json": text.encode("utf-8"),
    })


def save_packed(model, path, metadata=None):
    """Writes `model` as a packed one-bit archive at `path` (atomically).

    Args:
        model: a built Keras model with a serializable architecture
            (registered layers, no `Lambda`).
        path: the archive file to write (its folder must exist).
        metadata: an optional JSON-serializable dict stored in the manifest
            (read it back with `read_manifest(path)["metadata"]`).

    Returns:
        `path`, as given.

    Raises:
        ExportError: `path` cannot be written; metadata that is not
            JSON-serializable; a model that is not built, holds a `Lambda`
            layer or has no serializable architecture.
    """
    check_writable(path)
    data = packed_bytes(model, metadata)
    with atomic_write(path) as f:
        f.write(data)
    return path


# ----------------------------------------------------------------------------- reading
#
# Nothing is built from an archive before it is checked, in this order: the zip
# directory (exactly the three entries, each once, sizes bounded by the file), the
# manifest (every field typed and ranged, by name), the .npy headers (against the
# entry sizes and the manifest counts), the tensor table (its tensors tile the two
# blobs exactly), the values (finite floats, BN variances >= 0, each scale the one
# its scale_mode gives). Then the architecture is built with its variables
# deferred (no memory), under a budget of the parameters the blobs hold, and
# compared with the tensor table before a single variable is allocated.

MAX_MANIFEST_BYTES = 4 << 20
MAX_AXES = 32
MAX_DIM = 1 << 62
EXTRA_VARIABLE_ELEMENTS = 1 << 16  # variables a model holds beyond its weights (seed states)
TENSOR_KINDS = ("float32", "sign_bits")
CUSTOM_SCALE = "custom"  # a SignWeight subclass: its scale is its own alpha()
SCALE_MODES = ("he", "mean_abs", "none", CUSTOM_SCALE)
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


def scale_mode_of(quantizer):
    """The manifest `scale_mode` of a kernel quantizer: its `scale` ("he",
    "mean_abs", "none" or a number) for a `SignWeight`, "custom" for a
    subclass, whose own `alpha()` may give another scale."""
    if type(quantizer) is quantizers.SignWeight:
        return str(quantizer.scale)
    return CUSTOM_SCALE


def expected_scale(mode, shape):
    """The float32 scale a layer with `scale=mode` gives a kernel of `shape`
    (as `SignWeight.alpha` / `kernel_alpha`), or None for the data-dependent
    "mean_abs".

    Args:
        mode: a manifest `scale_mode`: "he", "none", "mean_abs" or a number string.
        shape: the kernel shape (HWIO or IO).

    Returns:
        A numpy float32, or None.

    Raises:
        ExportError: "he" on a kernel without inputs (fan_in 0).
    """
    if mode == "mean_abs":
        return None
    if mode == "none":
        return np.float32(1.0)
    if mode == "he":
        fan_in = math.prod(shape[:-1])
        if not shape or fan_in == 0:
            raise ExportError(f"a 'he' scale needs a kernel with inputs, got shape {shape}.")
        return np.float32(math.sqrt(2.0 / fan_in))
    with np.errstate(over="ignore"):
        return np.float32(float(mode))


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


def unpack_signs(bits, shape):
    """+1/-1 float32 array of `shape` from packed sign bits (bit 1 = +1)."""
    count = math.prod(shape)
    flat = np.unpackbits(bits, count=count, bitorder=BIT_ORDER)
    return (flat.astype(np.float32) * 2.0 - 1.0).reshape(shape)


class _VariableBudget(list):
    """Keras' list of deferred variables, refusing any variable past `limit`
    elements in total, when it is created (before anything reads it)."""

    def __init__(self, limit):
        super().__init__()
        self.limit = limit
        self.used = 0
        self.exceeded = None

    def append(self, variable):
        self.used += math.prod(variable.shape)
        if self.used > self.limit:
            self.exceeded = (f"the architecture declares more parameters than the archive "
                             f"holds: variable {variable.path} {tuple(variable.shape)} brings "
                             f"the total to {self.used} > {self.limit}")
            raise ExportError(self.exceeded)
        super().append(variable)


def _budget(manifest):
    """Parameters the archive can describe: every float, every sign bit, plus
    room for the few variables that are not weights (random seed states)."""
    return manifest["floats_count"] + 8 * manifest["bits_nbytes"] + EXTRA_VARIABLE_ELEMENTS


def _build_deferred(path, architecture, limit):
    """(model, created variables): the architecture built inside a stateless
    scope, so its variables have shapes but no memory; at most `limit` elements."""
    from keras.src.backend.common import global_state
    from keras.src.backend.common.stateless_scope import in_stateless_scope

    if in_stateless_scope():
        raise ExportError(f"{path}: load_packed cannot run inside a keras.StatelessScope.")
    key = "uninitialized_variables"
    pending = global_state.get_global_attribute(key, [], set_to_default=True)
    budget = _VariableBudget(limit)
    global_state.set_global_attribute(key, budget)
    try:
        with keras.StatelessScope(initialize_variables=False):
            model = keras.models.model_from_json(json.dumps(architecture))
    except Exception as e:  # Keras may wrap the budget's error: report it plainly
        if budget.exceeded:
            raise ExportError(f"{path}: {budget.exceeded}.") from None
        raise ExportError(f"{path}: cannot rebuild the architecture ({type(e).__name__}: "
                          f"{one_line(e)}).") from e
    finally:
        global_state.set_global_attribute(key, pending)
    if budget.exceeded:  # in case a layer caught the error and went on
        raise ExportError(f"{path}: {budget.exceeded}.")
    return model, list(budget)


def _check_structure(path, model, tensors):
    """The architecture's variables against the tensor table: count, layer names,
    shapes, and sign-bit counts; nothing is allocated yet."""
    weights = model.weights
    if len(tensors) != len(weights):
        raise ExportError(
            f"{path}: the archive has {len(tensors)} tensors but the architecture has "
            f"{len(weights)} variables."
        )
    owners = walk.weight_owners(model)
    for index, (entry, w) in enumerate(zip(tensors, weights, strict=True)):
        shape = tuple(entry["shape"])
        layer = entry["layer"]
        owner = owners.get(id(w))
        if owner is not None and owner.name != layer:
            raise ExportError(
                f"{path}: {_tensor_where(index, entry)} belongs to layer {layer!r}, the "
                f"architecture's variable {index} ({w.path}) to layer {owner.name!r}."
            )
        if tuple(w.shape) != shape:
            raise ExportError(
                f"{path}: shape mismatch in layer {layer!r} ({entry['path']}): the "
                f"archive holds {shape}, the architecture expects {tuple(w.shape)}."
            )
        nbytes = math.ceil(math.prod(shape) / 8)
        if entry["kind"] == "sign_bits" and entry["bits_nbytes"] != nbytes:
            raise ExportError(
                f"{path}: layer {layer!r} has {entry['bits_nbytes']} bytes of sign bits, "
                f"shape {shape} needs {nbytes}."
            )


def _initialize(variables):
    for v in variables:
        if v._value is None:
            v._deferred_initialize()


def _tensor_value(path, entry, w, kernels, bits, floats):
    """The value to assign to variable `w` from its tensor table entry."""
    shape = tuple(entry["shape"])
    count = math.prod(shape)
    layer = entry["layer"]
    if entry["kind"] == "float32":
        return floats[entry["offset"]:entry["offset"] + count].reshape(shape)
    binary = kernels.get(id(w))
    if binary is None:
        raise ExportError(
            f"{path}: {entry['path']} holds sign bits but layer {layer!r} of the "
            "architecture is not binary."
        )
    mode = scale_mode_of(binary.kernel_quantizer)
    if entry["scale_mode"] != mode:
        raise ExportError(
            f"{path}: {entry['path']} has scale_mode {entry['scale_mode']!r} but layer "
            f"{layer!r} of the architecture has scale {mode!r}."
        )
    if binary.switchable:
        binary.set_binary(True)  # the archive stores it one-bit
    signs, alpha = stored_signs(entry, bits, floats)
    kernel = restore_kernel(binary, signs, alpha)
    forward = keras.ops.convert_to_numpy(binary.kernel_quantizer(kernel))
    if not np.array_equal(forward, np.reshape(signs, forward.shape) * alpha):
        raise ExportError(
            f"{path}: {entry['path']}: layer {layer!r}'s kernel quantizer "
            f"{type(binary.kernel_quantizer).__name__} does not give back the stored "
            "alpha * sign(W) from any latent kernel tried; the archive cannot be loaded "
            "into this architecture exactly.")
    return kernel


def stored_signs(entry, bits, floats):
    """(signs, alpha) of a "sign_bits" tensor entry: its +-1 float32 kernel
    of the entry's shape and its scale (shape `scale_shape`), from the blobs."""
    start, offset = entry["bits_offset"], entry["scale_offset"]
    signs = unpack_signs(bits[start:start + entry["bits_nbytes"]], tuple(entry["shape"]))
    alpha = floats[offset:offset + math.prod(entry["scale_shape"])]
    return signs, alpha.reshape(entry["scale_shape"])


def _compile(path, model, compile_config):
    if not compile_config:
        return
    try:
        model.compile_from_config(compile_config)
    except Exception as e:
        raise ExportError(f"{path}: cannot restore the compile settings ({type(e).__name__}: "
                          f"{one_line(e)}).") from e
    model.compiled = True


def load_packed(path):
    """Rebuilds the Keras model stored by `save_packed` (no custom_objects needed).

    Every check of `read_packed` comes first; the architecture is then built
    with deferred variables under a budget of the parameters the archive holds
    and compared with the tensor table (layers, shapes, sign-bit counts) before
    any variable is allocated, so a small hostile file cannot take much memory.

    Args:
        path: a packed archive (`.onebit`).

    Returns:
        The Keras model, compiled if the archive records compile settings.

    Raises:
        ExportError: naming the entry, tensor, layer or field that is wrong.
    """
    manifest, bits, floats = read_packed(path)
    architecture = dict(manifest["model"])
    compile_config = architecture.pop("compile_config", None)
    model, created = _build_deferred(path, architecture, _budget(manifest))
    tensors = manifest["tensors"]
    _check_structure(path, model, tensors)
    _initialize(created)
    kernels = binary_kernels(model, switched_off_too=True)
    for entry, w in zip(tensors, model.weights, strict=True):
        value = _tensor_value(path, entry, w, kernels, bits, floats)
        w.assign(value.astype(w.dtype) if hasattr(value, "astype") else value)
    _compile(path, model, compile_config)
    return model


def limit_bytes(model):
    """The one-bit limit: binary weights / 8 + float parameters * 4 (scales included).

    Args:
        model: a built Keras model.

    Returns:
        The limit in bytes, an int: ceil(one-bit weights / 8) plus 4 bytes
        per float parameter (every other weight, and each binary kernel's
        scales).
    """
    kernels = binary_kernels(model)
    binary = floats = 0
    for w in model.weights:
        if id(w) in kernels:
            binary += math.prod(w.shape)
            floats += kernels[id(w)].kernel_alpha().size
        else:
            floats += math.prod(w.shape)
    return math.ceil(binary / 8) + 4 * floats
