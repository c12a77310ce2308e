"""`model.export(path)` writes a SavedModel for TF Serving that computes the
one-bit model exactly (the sign ops are in the graph), with no keras_onebit
needed to serve it: the served outputs come from a process that has only
TensorFlow (keras_onebit cannot be imported there)."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np

import keras_onebit as kob

SERVE = textwrap.dedent("""
    import sys
    sys.modules["keras_onebit"] = None  # any import of it fails
    import numpy as np
    import tensorflow as tf
    folder, images, out = sys.argv[1:]
    served = tf.saved_model.load(folder)
    np.save(out, served.serve(tf.constant(np.load(images))).numpy())
    assert not [name for name in sys.modules if name.startswith("keras_onebit.")]
""")


def test_model_export_savedmodel_gives_identical_outputs(tmp_path):
    keras.utils.set_random_seed(0)
    model = kob.models.wrn(8, 1, input_shape=(16, 16, 3), classes=5)
    images = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    expected = model.predict(images, verbose=0)
    model.export(str(tmp_path / "served"), verbose=False)
    np.save(tmp_path / "images.npy", images)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", SERVE, str(tmp_path / "served"),
                           str(tmp_path / "images.npy"), str(tmp_path / "served.npy")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "served.npy"), expected)
