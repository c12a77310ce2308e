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

import io
import json
import math
import zipfile

import keras
import numpy as np

from keras_onebit.export.errors import ExportError
from keras_onebit.export.files import atomic_write, check_writable
from keras_onebit.layers import is_binary

FORMAT_NAME = "keras_onebit.packed"
FORMAT_VERSION = 1
BIT_ORDER = "big"
ENTRIES = ("bits.npy", "floats.npy", "manifest.json")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
ZIP_ENTRY_OVERHEAD = 30 + 46 + 2 * len("manifest.json")  # per entry: local + central headers


def all_layers(model):
    """Every layer of `model`, nested models flattened, in a stable order."""
    return list(model._flatten_layers(include_self=False, recursive=True))


def weight_owners(model):
    """{id(variable): layer} for the innermost layer owning each variable."""
    owners = {}
    for layer in all_layers(model):
        for w in layer.weights:
            owners[id(w)] = layer
    return owners


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
    owners = weight_owners(model)
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
            packed = np.packbits(binary.sign_bits().reshape(-1), bitorder=BIT_ORDER)
            alpha = binary.kernel_alpha().astype("<f4").reshape(-1)
            entry.update(kind="sign_bits", bits_offset=nbits, bits_nbytes=int(packed.size),
                         scale_offset=nfloats, scale_shape=list(binary.kernel_alpha().shape),
                         scale_mode=str(binary.kernel_quantizer.scale))
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

    `metadata`: an optional JSON-serializable dict stored in the manifest
    (read it back with `read_manifest(path)["metadata"]`). Returns the path.
    """
    check_writable(path)
    data = packed_bytes(model, metadata)
    with atomic_write(path) as f:
        f.write(data)
    return path


def _read_entries(path):
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            missing = [n for n in ENTRIES if n not in names]
            if missing:
                raise ExportError(f"{path}: not a packed archive, missing entries {missing}.")
            return {n: zf.read(n) for n in ENTRIES}
    except FileNotFoundError as e:
        raise ExportError(f"{path}: no such file.") from e
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as e:
        if isinstance(e, ExportError):
            raise
        raise ExportError(f"{path}: corrupt or truncated archive ({type(e).__name__}: {e}).") from e


def _parse_manifest(path, raw):
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ExportError(f"{path}: manifest.json is corrupt ({e}).") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ExportError(f"{path}: manifest.json does not describe a {FORMAT_NAME} archive.")
    version = manifest.get("version")
    if version != FORMAT_VERSION:
        raise ExportError(
            f"{path}: unsupported format version {version!r}; this reader reads version "
            f"{FORMAT_VERSION}."
        )
    for key in ("model", "tensors", "bits_nbytes", "floats_count"):
        if key not in manifest:
            raise ExportError(f"{path}: manifest.json lacks {key!r}.")
    return manifest


def _parse_npy(path, name, raw, dtype, count):
    try:
        array = np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:
        raise ExportError(f"{path}: entry {name} is corrupt or truncated ({e}).") from e
    if array.dtype != np.dtype(dtype) or array.ndim != 1 or array.size != count:
        raise ExportError(
            f"{path}: entry {name} is {array.dtype}{array.shape}, the manifest expects "
            f"{np.dtype(dtype)}({count},)."
        )
    return array


def read_manifest(path):
    """The validated manifest dict of an archive (architecture, tensors, metadata)."""
    return _parse_manifest(path, _read_entries(path)["manifest.json"])


def read_packed(path):
    """(manifest, bits, floats) of an archive, every entry validated."""
    entries = _read_entries(path)
    manifest = _parse_manifest(path, entries["manifest.json"])
    bits = _parse_npy(path, "bits.npy", entries["bits.npy"], np.uint8, manifest["bits_nbytes"])
    floats = _parse_npy(path, "floats.npy", entries["floats.npy"], "<f4",
                        manifest["floats_count"])
    return manifest, bits, floats


def unpack_signs(bits, shape):
    """+1/-1 float32 array of `shape` from packed sign bits (bit 1 = +1)."""
    count = math.prod(shape)
    flat = np.unpackbits(bits, count=count, bitorder=BIT_ORDER)
    return (flat.astype(np.float32) * 2.0 - 1.0).reshape(shape)


def _restore_kernel(layer, signs, alpha):
    """A latent kernel with these signs whose scale is exactly `alpha`.

    A per-layer scale is a constant of the layer, so +-alpha is exact. A
    per-channel mean |W| of equal float32 values is summed with rounding
    error, so it can miss `alpha` by many ulps: the common magnitude is found
    by bisection on its float32 bit pattern (the mean is monotone in it), then
    the last weight of each channel alone, until the mean is `alpha` exactly.
    """
    alpha = np.asarray(alpha, np.float32)
    if not layer.kernel_quantizer.per_channel:
        return signs * alpha
    shape = tuple(layer.kernel.shape)
    signs = signs.reshape(-1, shape[-1])

    def scale_of(magnitude):
        got = layer.kernel_quantizer.alpha((signs * magnitude).reshape(shape))
        return np.asarray(keras.ops.convert_to_numpy(got), np.float32)

    def bisect(make, center, span):
        """Smallest float (as bits, per channel) whose mean is >= alpha."""
        bits = center.view(np.int32).astype(np.int64)
        lo, hi = np.maximum(bits - span, 1), bits + span
        while (hi > lo).any():
            mid = (lo + hi) // 2
            high = scale_of(make(mid.astype(np.int32).view(np.float32))) >= alpha
            hi, lo = np.where(high, mid, hi), np.where(high, lo, mid + 1)
        return lo.astype(np.int32).view(np.float32)

    common = bisect(lambda v: np.broadcast_to(v, signs.shape), alpha, 1 << 16)
    base = np.broadcast_to(common, signs.shape).astype(np.float32)

    def with_last(v):
        magnitude = base.copy()
        magnitude[-1] = v
        return magnitude

    last = bisect(with_last, common, 1 << 22)
    return (signs * with_last(last)).reshape(shape)


def _slice(path, array, start, count, what):
    if start < 0 or start + count > array.size:
        raise ExportError(f"{path}: {what} points outside its blob (truncated archive?).")
    return array[start:start + count]


def load_packed(path):
    """Rebuilds the Keras model stored by `save_packed` (no custom_objects needed)."""
    manifest, bits, floats = read_packed(path)
    try:
        model = keras.models.model_from_json(json.dumps(manifest["model"]))
    except Exception as e:
        raise ExportError(f"{path}: cannot rebuild the architecture ({e}).") from e
    weights = model.weights
    tensors = manifest["tensors"]
    if len(tensors) != len(weights):
        raise ExportError(
            f"{path}: the archive has {len(tensors)} tensors but the architecture has "
            f"{len(weights)} variables."
        )
    kernels = binary_kernels(model, switched_off_too=True)
    for entry, w in zip(tensors, weights, strict=True):
        shape = tuple(int(d) for d in entry["shape"])
        layer = entry.get("layer")
        if tuple(w.shape) != shape:
            raise ExportError(
                f"{path}: shape mismatch in layer {layer!r} ({entry.get('path')}): the "
                f"archive holds {shape}, the architecture expects {tuple(w.shape)}."
            )
        count = math.prod(shape)
        if entry["kind"] == "sign_bits":
            if id(w) not in kernels:
                raise ExportError(
                    f"{path}: {entry.get('path')} holds sign bits but layer {layer!r} of the "
                    "architecture is not binary."
                )
            nbytes = math.ceil(count / 8)
            if entry["bits_nbytes"] != nbytes:
                raise ExportError(
                    f"{path}: layer {layer!r} has {entry['bits_nbytes']} bytes of sign bits, "
                    f"shape {shape} needs {nbytes}."
                )
            packed = _slice(path, bits, entry["bits_offset"], nbytes, f"layer {layer!r} bits")
            scale_count = math.prod(entry["scale_shape"])
            alpha = _slice(path, floats, entry["scale_offset"], scale_count,
                           f"layer {layer!r} scale").reshape(entry["scale_shape"])
            if kernels[id(w)].switchable:
                kernels[id(w)].set_binary(True)  # the archive stores it one-bit
            value = _restore_kernel(kernels[id(w)], unpack_signs(packed, shape), alpha)
        elif entry["kind"] == "float32":
            value = _slice(path, floats, entry["offset"], count,
                           f"{entry.get('path')}").reshape(shape)
        else:
            raise ExportError(f"{path}: unknown tensor kind {entry['kind']!r}.")
        w.assign(value.astype(w.dtype) if hasattr(value, "astype") else value)
    return model


def limit_bytes(model):
    """The one-bit limit: binary weights / 8 + float parameters * 4 (scales included)."""
    kernels = binary_kernels(model)
    binary = floats = 0
    for w in model.weights:
        if id(w) in kernels:
            binary += math.prod(w.shape)
            floats += kernels[id(w)].kernel_alpha().size
        else:
            floats += math.prod(w.shape)
    return math.ceil(binary / 8) + 4 * floats
