"""A byte-oriented LZ77 for the small parts of a model that expansion copies
(expansion_record.py): simple enough to decode in a few lines of C with no
library (examples/onebit_expand.c), good on what a .tflite skeleton repeats
(per-channel scales and zero points, tensor tables) and on what it shares with
a second file both sides hold (the packed file: its constants, scales, shapes).

The stream is a sequence of operations; a count is an unsigned LEB128 varint
(at most 5 bytes, < 2**32):

    0x00 n <n bytes>     literal: append the n bytes
    0x01 n d             copy: append n bytes, one at a time, from d bytes back
                         in the output (1 <= d <= output so far; d < n repeats)
    0x02 n o             reference: append bytes o .. o + n of the source
                         (o + n <= its size)
    0x03 n a b           products: append n / 4 float32 (little-endian) values,
                         the float32 at source byte a times each of the n / 4
                         float32 from source byte b (n a multiple of 4); an int8
                         bias's scales are its input's scale times its filter's

`compress` emits the products it is given where they are, and elsewhere the
longest match among the last positions of each 4-byte key in the output so far
and in the source's allowed ranges; it is deterministic: the same input gives
the same stream.
"""

import numpy as np

LITERAL, COPY, REFERENCE, PRODUCTS = 0, 1, 2, 3
MIN_MATCH = 6
CANDIDATES = 16  # positions kept per 4-byte key
MAX_COUNT = (1 << 32) - 1


class StreamError(ValueError):
    """A stream that does not decode to its declared size."""


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return out


def _match_length(a, here, b, there, limit):
    """How many bytes of `a` from `here` equal those of `b` from `there`, at most `limit`."""
    n = 0
    while n + 64 <= limit and a[here + n:here + n + 64] == b[there + n:there + n + 64]:
        n += 64
    while n < limit and a[here + n] == b[there + n]:
        n += 1
    return n


def _index(source, ranges):
    """{4-byte key: [(position, end of its range)]} of the source's allowed ranges."""
    table = {}
    for start, end in ranges:
        for p in range(start, end - 3):
            entries = table.setdefault(source[p:p + 4], [])
            entries.append((p, end))
            del entries[:-CANDIDATES]
    return table


def products(source, a, b, n):
    """The n bytes of float32 products that operation 0x03 appends."""
    x = np.frombuffer(source, "<f4", 1, a)
    w = np.frombuffer(source, "<f4", n // 4, b)
    return (x.astype(np.float32) * w.astype(np.float32)).astype("<f4").tobytes()


def compress(data, source=b"", ranges=(), product_spans=()):
    """The LZ stream of `data` (bytes); references may point into `source`
    within `ranges` ([(start, end)]), which the decoder also holds;
    `product_spans`: [(start, n, a, b)], data[start:start + n] being
    `products(source, a, b, n)` (not overlapping)."""
    data, source = bytes(data), bytes(source)
    out, literal, table, i = bytearray(), bytearray(), {}, 0
    outside = _index(source, ranges)
    forced = {start: (n, a, b) for start, n, a, b in product_spans}
    stops, upcoming = sorted(forced) + [len(data)], 0

    def flush():
        if literal:
            out.extend(bytes([LITERAL]) + _varint(len(literal)) + literal)
            literal.clear()

    while i < len(data):
        while stops[upcoming] < i:
            upcoming += 1
        if i in forced:
            flush()
            n, a, b = forced[i]
            out.extend(bytes([PRODUCTS]) + _varint(n) + _varint(a) + _varint(b))
            i += n
            continue
        key, limit = data[i:i + 4], stops[upcoming] - i
        best, op, where = 0, COPY, 0
        for j in table.get(key, ()):
            n = _match_length(data, i, data, j, limit)
            if n > best:
                best, op, where = n, COPY, i - j
        for j, end in outside.get(key, ()):
            n = _match_length(data, i, source, j, min(limit, end - j))
            if n > best:
                best, op, where = n, REFERENCE, j
        table.setdefault(key, []).append(i)
        del table[key][:-CANDIDATES]
        if best >= MIN_MATCH:
            flush()
            out.extend(bytes([op]) + _varint(best) + _varint(where))
            i += best
        else:
            literal.append(data[i])
            i += 1
    flush()
    return bytes(out)


def _read_varint(stream, pos):
    value, shift = 0, 0
    for k in range(5):
        if pos + k >= len(stream):
            raise StreamError("the stream ends inside a count")
        byte = stream[pos + k]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if value > MAX_COUNT:
                break
            return value, pos + k + 1
    raise StreamError("a count of more than 32 bits")


def decompress(stream, size, source=b""):
    """The `size` bytes `stream` encodes with `source`; StreamError unless it
    holds exactly them."""
    out, pos = bytearray(), 0
    while pos < len(stream):
        tag = stream[pos]
        n, pos = _read_varint(stream, pos + 1)
        if n == 0 or n > size - len(out):
            raise StreamError(f"an operation of {n} bytes at {len(out)} of {size}")
        if tag == LITERAL:
            if pos + n > len(stream):
                raise StreamError("the stream ends inside a literal")
            out += stream[pos:pos + n]
            pos += n
        elif tag == COPY:
            d, pos = _read_varint(stream, pos)
            if not 1 <= d <= len(out):
                raise StreamError(f"a copy from {d} bytes back at {len(out)}")
            start = len(out) - d
            chunk = bytes(out[start:start + min(d, n)])
            out += (chunk * (n // len(chunk) + 1))[:n]
        elif tag == REFERENCE:
            offset, pos = _read_varint(stream, pos)
            if offset + n > len(source):
                raise StreamError(f"a reference to bytes {offset}..{offset + n} of a "
                                  f"{len(source)}-byte source")
            out += source[offset:offset + n]
        elif tag == PRODUCTS:
            a, pos = _read_varint(stream, pos)
            b, pos = _read_varint(stream, pos)
            if n % 4 or a + 4 > len(source) or b + n > len(source):
                raise StreamError(f"products of {n} bytes from bytes {a} and {b} of a "
                                  f"{len(source)}-byte source")
            out += products(source, a, b, n)
        else:
            raise StreamError(f"unknown operation {tag}")
    if len(out) != size:
        raise StreamError(f"{len(out)} bytes decoded, {size} declared")
    return bytes(out)
