"""The expansion record of a packed .tflite file: what turns it back into the
plain export, byte for byte, with plain loops and no flatbuffer library
(`examples/onebit_expand.c` does the same in C for apps).

`bitpack.pack_filters` stores it in the packed file as the metadata buffer
named "onebit_expand" (LiteRT and TFLite Micro ignore it). All numbers are
little-endian:

    header, 32 bytes
       0  "OBXP"
       4  u32 version            1
       8  u64 plain_size         bytes of the plain file (the float or int8 export)
      16  u64 skeleton_size      its bytes outside the packed filters
      24  u32 filter_count
      28  u32 stream_size        bytes of the skeleton's LZ stream (lz.py; its
                                 source is the packed file itself)
    filter_count entries of 40 bytes, `hole` increasing
       0  u64 hole               where the filter's data starts in the plain file
       8  u64 count              its weights
      16  u32 channels           output channels (divides count)
      20  u8  dtype              0 float32, 1 int8
      21  u8  layout             0 channel last (a depthwise filter, 1 x kh x kw x C),
                                 1 channel first (CONV_2D's C x kh x kw x C_in,
                                 FULLY_CONNECTED's C x C_in)
      22  u16 0
      24  u32 bits               the buffer of the packed file holding its sign bits
      28  u32 scales             0: every channel's magnitude is `magnitude`; else the
                                 buffer holding one float32 magnitude per channel
      32  f32 magnitude
      36  u32 0
    the stream
    zero or more bytes of padding (the record is written where the file had
    room for it: its references point at bytes around it)

The sign bits are the packed file's own (bitpack.py): weight k of the Keras
kernel in C order is bit 7 - k % 8 of byte k // 8, 1 = +1; its channel is
c = k % channels and its row r = k // channels. Expanding: decode the skeleton,
then insert each filter at `hole`: weight k goes to position k (layout 0) or
c * (count / channels) + r (layout 1) as +m_c if its bit is 1 else -m_c
(float32, or int8 for dtype 1).
"""

import math
import struct

import numpy as np

from keras_onebit.export import lz
from keras_onebit.export.errors import ExportError

NAME = b"onebit_expand"
MAGIC = b"OBXP"
VERSION = 1
HEADER = struct.Struct("<4sIQQII")
ENTRY = struct.Struct("<QQIBBHIIfI")
FLOAT32, INT8 = 0, 1
CHANNEL_LAST, CHANNEL_FIRST = 0, 1
ITEM_BYTES = {FLOAT32: 4, INT8: 1}
MAX_PLAIN_BYTES = 2 << 30  # flatbuffers address 2 GiB


# ----------------------------------------------------------------------------- writing


def buffer_position(root, index):
    """(start, length) of buffer `index`'s data in a flatbuffer (`schema.Model`)."""
    buffer = root.Buffers(index)
    offset = buffer._tab.Offset(4)  # Buffer.data, field 0
    if not offset:
        return 0, 0
    return buffer._tab.Vector(offset), buffer.DataLength()


def _scale_vector(tensor):
    """(start, length) of a tensor's quantization scales in its file, or None."""
    q = tensor.Quantization()
    offset = q._tab.Offset(8) if q is not None else 0  # QuantizationParameters.scale
    return (q._tab.Vector(offset), q.ScaleLength()) if offset else None


def bias_scale_spans(schema, plain, packed, holes):
    """[(skeleton start, n, a, b)]: where an int8 conv's bias scales in the plain
    file are its input's scale times its filter's scales, both found in the
    packed file (whose main graph has the plain file's tensors, in order), so
    the stream stores them as lz's products instead of n bytes."""
    plain_root, packed_root = (schema.Model.GetRootAsModel(d, 0) for d in (plain, packed))
    ours, theirs = plain_root.Subgraphs(0), packed_root.Subgraphs(0)
    wanted = {getattr(schema.BuiltinOperator, n) for n in ("CONV_2D", "DEPTHWISE_CONV_2D",
                                                          "FULLY_CONNECTED")}
    codes = [max(plain_root.OperatorCodes(i).BuiltinCode(),
                 plain_root.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(plain_root.OperatorCodesLength())]
    spans = []
    for i in range(ours.OperatorsLength()):
        op = ours.Operators(i)
        if codes[op.OpcodeIndex()] not in wanted or op.InputsLength() < 3 or op.Inputs(2) < 0:
            continue
        bias, x, w = (_scale_vector(t) for t in (ours.Tensors(op.Inputs(2)),
                                                 theirs.Tensors(op.Inputs(0)),
                                                 theirs.Tensors(op.Inputs(1))))
        if None in (bias, x, w) or x[1] != 1 or w[1] != bias[1] or bias[1] < 2:
            continue
        n = 4 * bias[1]
        if lz.products(packed, x[0], w[0], n) == plain[bias[0]:bias[0] + n]:
            before = sum(length for start, length in holes if start < bias[0])
            spans.append((bias[0] - before, n, x[0], w[0]))
    return sorted(set(spans))


def build(plain, holes, filters, packed, ranges, spans=()):
    """The record of a packed file.

    Args:
        plain: the plain file's bytes.
        holes: [(start, length)] of each packed filter's data in `plain`, in
            the order of `filters`.
        filters: [(count, channels, dtype, layout, bits, scales, magnitude)].
        packed: the packed file's bytes as they will be around the record,
            which the skeleton's stream may reference (the constants, scales
            and shapes both files hold).
        ranges: [(start, end)] of `packed` that references may use (not the
            record's own place).
        spans: `bias_scale_spans` (positions in the skeleton).

    Returns:
        The record's bytes.
    """
    order = sorted(range(len(holes)), key=lambda i: holes[i][0])
    skeleton, position, entries = bytearray(), 0, []
    for i in order:
        start, length = holes[i]
        count, channels, dtype, layout, bits, scales, magnitude = filters[i]
        if length != count * ITEM_BYTES[dtype] or start < position:
            raise ExportError("Packing sign bits: a filter's data is not where the model says.")
        skeleton += plain[position:start]
        position = start + length
        entries.append(ENTRY.pack(start, count, channels, dtype, layout, 0, bits, scales,
                                  magnitude, 0))
    skeleton += plain[position:]
    stream = lz.compress(skeleton, packed, ranges, spans)
    header = HEADER.pack(MAGIC, VERSION, len(plain), len(skeleton), len(entries), len(stream))
    return header + b"".join(entries) + stream


# ----------------------------------------------------------------------------- reading


def find(root):
    """The record's bytes in a packed file (`schema.Model`), or None."""
    for i in range(root.MetadataLength()):
        entry = root.Metadata(i)
        if entry.Name() == NAME:
            index = entry.Buffer()
            if index >= root.BuffersLength():
                raise ExportError("tampered packed file: its expansion record points past "
                                  "the buffers.")
            return root.Buffers(index).DataAsNumpy().tobytes() if root.Buffers(
                index).DataLength() else b""
    return None


def _header(record):
    if len(record) < HEADER.size or record[:4] != MAGIC:
        raise ExportError("tampered packed file: its expansion record has no OBXP header.")
    magic, version, plain_size, skeleton_size, count, stream_size = HEADER.unpack_from(record)
    if version > VERSION:
        raise ExportError(f"a packed file of format v{version} (this keras_onebit expands "
                          f"format v{VERSION}): upgrade keras_onebit.")
    if version != VERSION:
        raise ExportError(f"tampered packed file: expansion record version {version}.")
    if (plain_size > MAX_PLAIN_BYTES or skeleton_size > plain_size
            or HEADER.size + count * ENTRY.size + stream_size > len(record)):
        raise ExportError(f"tampered packed file: an expansion record of {len(record)} bytes "
                          f"declares {count} filters, a {stream_size}-byte stream and a "
                          f"{plain_size}-byte model.")
    return plain_size, skeleton_size, count, stream_size


def _entries(record, count, plain_size, skeleton_size, buffer_bytes):
    """The checked entries: holes in order inside the model, sizes matching their buffers."""
    entries, end, total = [], 0, skeleton_size
    for i in range(count):
        hole, n, channels, dtype, layout, _, bits, scales, magnitude, _ = ENTRY.unpack_from(
            record, HEADER.size + i * ENTRY.size)
        size = n * ITEM_BYTES.get(dtype, 0)
        problem = None
        if dtype not in ITEM_BYTES or layout not in (CHANNEL_LAST, CHANNEL_FIRST):
            problem = f"dtype {dtype}, layout {layout}"
        elif not n or not channels or n % channels:
            problem = f"{n} weights in {channels} channels"
        elif hole < end or hole + size > plain_size:
            problem = f"bytes {hole}..{hole + size} of a {plain_size}-byte model"
        elif buffer_bytes(bits) != -(-n // 8):
            problem = f"{n} weights but {buffer_bytes(bits)} bytes of sign bits"
        elif scales and buffer_bytes(scales) != 4 * channels:
            problem = f"{channels} channels but {buffer_bytes(scales)} bytes of scales"
        elif not math.isfinite(magnitude):
            problem = f"the magnitude {magnitude}"
        elif dtype == INT8 and (scales or magnitude not in range(128)):
            problem = "an int8 magnitude other than one integer in 0..127"
        if problem:
            raise ExportError(f"tampered packed file: filter {i} of its expansion record has "
                              f"{problem}.")
        entries.append((hole, n, channels, dtype, layout, bits, scales, magnitude))
        end, total = hole + size, total + size
    if total != plain_size:
        raise ExportError(f"tampered packed file: its expansion record fills {total} of "
                          f"{plain_size} bytes.")
    return entries


def filter_bytes(n, channels, dtype, layout, bits, magnitudes):
    """The plain file's bytes of one filter (see the module docstring)."""
    signs = np.unpackbits(bits, count=n, bitorder="big").reshape(n // channels, channels)
    if layout == CHANNEL_FIRST:
        signs = signs.T
    m = magnitudes if layout == CHANNEL_LAST else magnitudes[:, None]
    if dtype == INT8:
        m = m.astype(np.int8)
    return np.where(signs.astype(bool), m, -m).astype(
        np.int8 if dtype == INT8 else "<f4").tobytes()


def expand(root, packed):
    """The plain file a packed file (its bytes, and its `schema.Model`) was made from."""
    record = find(root)

    def data(index):
        if not 0 < index < root.BuffersLength():
            raise ExportError(f"tampered packed file: its expansion record names buffer {index}.")
        return root.Buffers(index).DataAsNumpy() if root.Buffers(index).DataLength() else (
            np.zeros(0, np.uint8))

    plain_size, skeleton_size, count, stream_size = _header(record)
    entries = _entries(record, count, plain_size, skeleton_size, lambda i: data(i).size)
    start = HEADER.size + count * ENTRY.size
    try:
        skeleton = lz.decompress(record[start:start + stream_size], skeleton_size, packed)
    except lz.StreamError as e:
        raise ExportError(f"tampered packed file: its skeleton stream is corrupt ({e}).") from e
    out, position, taken = bytearray(), 0, 0
    for hole, n, channels, dtype, layout, bits, scales, magnitude in entries:
        out += skeleton[taken:taken + hole - position]
        taken += hole - position
        magnitudes = (data(scales).view("<f4").astype(np.float32) if scales
                      else np.full(channels, magnitude, np.float32))
        out += filter_bytes(n, channels, dtype, layout, data(bits), magnitudes)
        position = hole + n * ITEM_BYTES[dtype]
    out += skeleton[taken:]
    return bytes(out)
