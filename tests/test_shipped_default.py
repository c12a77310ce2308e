"""The headline claims, proven on what ships: the hub default's exports in every
TFLite format on the 1000 exact CIFAR-10 test images.

- `packed` computes what `float` computes (to float rounding: the same kernels,
  other operators);
- `packed_int8` is bit-identical to `int8` on LiteRT's builtin kernels (with
  XNNPACK, int8 runs XNNPACK's int8 convs, which round some values one step
  differently: packed_int8's run-time filters keep it on the builtin kernels);
- `micro` (TFLite Micro's 1-bit lookup tables) is bit-identical to `int8` in
  the TFLite Micro interpreter (on the first MICRO_IMAGES: the Python TFLite
  Micro interpreter takes ~0.2 s per image and model; TFLite Micro's reference
  int8 kernels round some values otherwise than LiteRT's);
- `int8` picks Keras' class on >= 99% of the images.
(tests/test_pretrained.py re-measures the Keras accuracy against the card.)
"""

import numpy as np
import pytest

import keras_onebit as kob
from keras_onebit.export import expand, micro, report, tflite

IMAGES = 1000
MICRO_IMAGES = 30


@pytest.fixture(scope="module")
def shipped(cifar10):
    model = kob.hub.load(kob.hub.default_model_id())
    index = np.flatnonzero(cifar10["test_exact_mask"])[:IMAGES]
    assert len(index) == IMAGES
    images = cifar10["x_test"][index].astype("float32")
    keras_out = model.predict(images, batch_size=100, verbose=0)
    representative = cifar10["x_train"][:200].astype("float32")
    files = {fmt: tflite.convert(model, fmt, representative)
             for fmt in ("float", "int8", "packed", "packed_int8")}
    return images, keras_out, files


def test_packed_computes_float(shipped):
    images, _, files = shipped
    plain = report.litert_outputs(files["float"], images)
    packed = report.litert_outputs(files["packed"], images)
    np.testing.assert_allclose(packed, plain, rtol=0, atol=1e-5)
    assert (packed.argmax(1) == plain.argmax(1)).all()


def test_packed_int8_is_bit_identical_to_int8(shipped):
    """packed_int8 as stored computes int8's outputs bit for bit on LiteRT's builtin
    kernels, where its convs run (100 images: the builtin kernels take 50 s for
    1000); int8 as LiteRT runs it (XNNPACK) meets the issue's target on all 1000
    (measured 0.990; 0.989 on the builtin kernels)."""
    images, keras_out, files = shipped
    few = images[:100]
    np.testing.assert_array_equal(report.litert_outputs(files["packed_int8"], few, xnnpack=False),
                                  report.litert_outputs(files["int8"], few, xnnpack=False))
    xnnpack = report.litert_outputs(files["int8"], images)
    assert report.compare(keras_out, xnnpack)["argmax_agreement"] >= 0.99


def test_micro_is_bit_identical_to_int8_in_tflite_micro(shipped):
    images, _, files = shipped
    images = images[:MICRO_IMAGES]
    compressed = micro.compress(files["int8"])
    out = micro.run(compressed, images, micro.minimum_arena(compressed, images[0]))
    int8 = micro.run(files["int8"], images, micro.minimum_arena(files["int8"], images[0]))
    np.testing.assert_array_equal(out, int8)


@pytest.mark.parametrize("packed, plain", [("packed", "float"), ("packed_int8", "int8")])
def test_expanded_packed_file_is_the_plain_export(shipped, packed, plain):
    """`expand` gives back the plain model byte for byte (so the same outputs as the
    plain export wherever it runs), from a file about a fifth (int8) or a thirtieth
    (float) of its size."""
    _, _, files = shipped
    expanded = expand(files[packed])
    assert expanded == files[plain] and len(expanded) > 4 * len(files[packed])
