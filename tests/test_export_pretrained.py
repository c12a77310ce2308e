"""The authors' trained one-bit WRN-20-10 (../shared/reference) through int8 / int4:
argmax agreement with Keras on the 500 first exact CIFAR-10 test images.

Slow (about 3 minutes on 2 cores: two conversions of 26.7M weights), so opt-in:
KERAS_ONEBIT_SLOW_TESTS=1 pytest tests/test_export_pretrained.py
"""

import os

import numpy as np
import pytest

from keras_onebit.export import report, tflite

MAT = "reference/mcdonnell-wrn-20-10/CIFAR10_allparams.mat"

pytestmark = pytest.mark.skipif(not os.environ.get("KERAS_ONEBIT_SLOW_TESTS"),
                                reason="slow: set KERAS_ONEBIT_SLOW_TESTS=1")


@pytest.fixture(scope="module")
def setup(shared, cifar10):
    from keras_onebit import hub

    model = hub.load(shared / MAT)
    index = np.flatnonzero(cifar10["test_exact_mask"])[:500]
    images = cifar10["x_test"][index].astype("float32")
    reference = model.predict(images, batch_size=50, verbose=0)
    assert (reference.argmax(1) == cifar10["y_test"][index]).mean() >= 0.95
    return model, images, reference, cifar10["x_train"][:200].astype("float32")


@pytest.mark.parametrize("fmt", ["int8", "int4"])
def test_pretrained_quantized_agreement(setup, fmt):
    model, images, reference, representative = setup
    out = report.litert_outputs(tflite.convert(model, fmt, representative), images)
    assert report.compare(reference, out)["argmax_agreement"] >= 0.99
