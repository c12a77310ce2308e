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

from keras_onebit import layer_walk
from keras_onebit.export.errors import ExportError
from keras_onebit.export.files import atomic_write, check_writable
from keras_onebit.export.packed_format import (  # noqa: F401  (public names of the format, here too)
    BIT_ORDER,
    ENTRIES,
    FORMAT_NAME,
    FORMAT_VERSION,
    expected_scale,
    scale_mode_of,
    stored_signs,
    unpack_signs,
)
from keras_onebit.export.packed_loader import load_packed  # noqa: F401
from keras_onebit.export.packed_reader import read_manifest, read_packed  # noqa: F401
from keras_onebit.layer_walk import all_layers
from keras_onebit.layers import binary_kernels

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
ZIP_ENTRY_OVERHEAD = 30 + 46 + 2 * len("manifest.json")  # per entry: local + central headers


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
    owners = layer_walk.weight_owners(model)
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
