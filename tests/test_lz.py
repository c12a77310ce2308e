"""The expansion record's LZ stream (keras_onebit/export/lz.py): round trips,
determinism, sources, and refusal of every malformed operation."""

import numpy as np
import pytest

from keras_onebit.export import lz

RNG = np.random.default_rng(0)
RANDOM = RNG.integers(0, 256, 5000, dtype=np.uint8).tobytes()
SCALES = np.full(640, 0.0421, np.float32).tobytes() + np.zeros(640, np.int64).tobytes()
TEXT = b"wrn_16_4_1/stage3_block2_conv2_1/convolution;" * 40


@pytest.mark.parametrize("data", [b"", b"a", RANDOM, SCALES, TEXT, RANDOM[:100] + SCALES + TEXT])
def test_round_trip(data):
    stream = lz.compress(data)
    assert lz.decompress(stream, len(data)) == data
    assert lz.compress(data) == stream


def test_repeats_shrink_to_a_few_bytes():
    assert len(lz.compress(SCALES)) < 40  # 7,680 bytes: two runs
    assert len(lz.compress(RANDOM)) < len(RANDOM) + 16  # incompressible: little overhead


def test_a_source_is_referenced_within_its_ranges_only():
    constant = RNG.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    hidden = RNG.integers(0, 256, 500, dtype=np.uint8).tobytes()
    source = b"x" * 100 + constant + hidden
    data = TEXT + constant + SCALES + constant[:10] + hidden
    ranges = [(0, 100 + len(constant))]  # `hidden` is outside them
    stream = lz.compress(data, source, ranges)
    bare = len(lz.compress(TEXT + SCALES + hidden))
    assert bare - 20 < len(stream) < bare + 30
    assert lz.decompress(stream, len(data), source) == data
    with pytest.raises(lz.StreamError, match="reference to bytes"):
        lz.decompress(stream, len(data), source[:1000])


@pytest.mark.parametrize("stream, size, words", [
    (b"\x00\x05abc", 5, "inside a literal"),
    (b"\x00\x03abc", 4, "3 bytes decoded, 4 declared"),
    (b"\x00\x03abc\x00\x01d", 3, "operation of 1 bytes"),
    (b"\x00\x02ab\x01\x04\x03", 6, "copy from 3 bytes back"),
    (b"\x00\x02ab\x01\x04\x00", 6, "copy from 0 bytes back"),
    (b"\x07\x01", 1, "unknown operation 7"),
    (b"\x00", 1, "ends inside a count"),
    (b"\x00\xff\xff\xff\xff\x7f", 1, "more than 32 bits"),
    (b"\x00\x00", 0, "operation of 0 bytes"),
])
def test_malformed_streams_are_refused(stream, size, words):
    with pytest.raises(lz.StreamError, match=words):
        lz.decompress(stream, size)


def test_a_copy_shorter_than_its_distance_and_a_repeat():
    assert lz.decompress(b"\x00\x03abc\x01\x02\x03", 5) == b"abcab"
    assert lz.decompress(b"\x00\x02ab\x01\x05\x02", 7) == b"abababa"


def test_products_are_float32_scale_times_scales():
    scales = np.array([0.5, 3.0e-3, 7.25], "<f4")
    source = np.float32(0.1).astype("<f4").tobytes() + scales.tobytes()
    want = (np.float32(0.1) * scales).astype("<f4").tobytes()
    data = b"head" + want + b"tail"
    stream = lz.compress(data, source, (), [(4, 12, 0, 4)])
    assert stream[:6] == b"\x00\x04head" and stream[6] == lz.PRODUCTS
    assert lz.decompress(stream, len(data), source) == data
    for bad in (b"\x03\x0c\x00\x05", b"\x03\x0b\x00\x04", b"\x03\x0c\x0d\x04"):
        with pytest.raises(lz.StreamError, match="products"):
            lz.decompress(bad, 12, source)
