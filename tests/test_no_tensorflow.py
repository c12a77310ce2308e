"""On Keras's JAX and PyTorch backends the library imports, trains, loads hub models and expands
packed files without TensorFlow: a child process where TensorFlow cannot be imported.
What needs TensorFlow (the tf.data pipeline, stochastic storage, TFLite export)
says so in one line there."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_onebit as kob
from keras_onebit.export import tflite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHILD = textwrap.dedent("""
    import sys
    # As if TensorFlow were not installed: `import tensorflow` raises ModuleNotFoundError and
    # importlib.util.find_spec("tensorflow") gives None (torch probes for it that way).
    sys.modules["tensorflow"] = None
    import json
    import keras, numpy as np
    import keras_onebit as kob
    from keras_onebit import export, hub, training
    result = {"backend": keras.backend.backend()}
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).uniform(0, 255, (64, 16, 16, 3)).astype("float32")
    y = np.arange(64) % 4
    model = kob.models.wrn(8, 1, input_shape=(16, 16, 3), classes=4)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0).history["loss"]
    result["loss_falls"] = history[-1] < history[0]
    default = hub.load(hub.default_model_id())
    result["hub_predicts"] = default.predict(x[:2, :, :, :].repeat(2, 1).repeat(2, 2),
                                             verbose=0).shape == (2, 10)
    expanded = export.expand(sys.argv[1])
    result["expanded_bytes"] = len(expanded)
    errors = {}
    for name, call in (("pipeline", lambda: training.train_dataset(x, y, 16)),
                       ("export", lambda: export.convert(model, "float"))):
        try:
            call()
            errors[name] = None
        except kob.Error as e:
            errors[name] = str(e)
    result["errors"] = errors
    result["tensorflow_modules"] = [m for m, module in sys.modules.items()
                                    if m.split(".")[0] == "tensorflow" and module is not None]
    print(json.dumps(result))
""")


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_without_tensorflow(backend, tmp_path):
    pytest.importorskip(backend)
    keras.utils.set_random_seed(0)
    model = kob.models.wrn(8, 1, classifier_activation=None)
    images = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    packed = tmp_path / "m_packed_int8.tflite"
    packed.write_bytes(tflite.convert(model, "packed_int8", images))
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(packed)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["backend"] == backend and result["tensorflow_modules"] == []
    assert result["loss_falls"] and result["hub_predicts"]
    assert result["expanded_bytes"] > 2 * packed.stat().st_size
    for name, message in result["errors"].items():
        assert message and "\n" not in message, name
        assert "needs" in message and "tensorflow" in message.lower(), message
