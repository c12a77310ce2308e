"""`model.export(path)` writes a SavedModel for TF Serving that computes the
one-bit model exactly (the sign ops are in the graph), with no keras_onebit
needed to serve it."""

import keras
import numpy as np
import tensorflow as tf

import keras_onebit as kob


def test_model_export_savedmodel_gives_identical_outputs(tmp_path):
    keras.utils.set_random_seed(0)
    model = kob.models.wrn(8, 1, input_shape=(16, 16, 3), classes=5)
    images = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    expected = model.predict(images, verbose=0)
    model.export(str(tmp_path / "served"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "served"))
    np.testing.assert_array_equal(served.serve(tf.constant(images)).numpy(), expected)
