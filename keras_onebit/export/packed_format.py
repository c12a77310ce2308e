"""The packed one-bit archive's format: its name, version, entries and bit order, the scale modes
of its binary kernels, and the sign bits' unpacking, shared by the writer (`packed`), the checked
reader (`packed_reader`) and the loader (`packed_loader`). docs/FORMAT.md describes the bytes."""

import math

import numpy as np

from keras_onebit import quantizers
from keras_onebit.export.errors import ExportError

FORMAT_NAME = "keras_onebit.packed"


FORMAT_VERSION = 1


BIT_ORDER = "big"


ENTRIES = ("bits.npy", "floats.npy", "manifest.json")


CUSTOM_SCALE = "custom"  # a SignWeight subclass: its scale is its own alpha()


SCALE_MODES = ("he", "mean_abs", "none", CUSTOM_SCALE)


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


def unpack_signs(bits, shape):
    """+1/-1 float32 array of `shape` from packed sign bits (bit 1 = +1)."""
    count = math.prod(shape)
    flat = np.unpackbits(bits, count=count, bitorder=BIT_ORDER)
    return (flat.astype(np.float32) * 2.0 - 1.0).reshape(shape)


def stored_signs(entry, bits, floats):
    """(signs, alpha) of a "sign_bits" tensor entry: its +-1 float32 kernel
    of the entry's shape and its scale (shape `scale_shape`), from the blobs."""
    start, offset = entry["bits_offset"], entry["scale_offset"]
    signs = unpack_signs(bits[start:start + entry["bits_nbytes"]], tuple(entry["shape"]))
    alpha = floats[offset:offset + math.prod(entry["scale_shape"])]
    return signs, alpha.reshape(entry["scale_shape"])
