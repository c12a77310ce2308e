"""keras_onebit.compat against the installed Keras and TensorFlow: each private API it wraps
still exists and does what the library relies on. A failure here after an upgrade names the
function to adapt (keras_onebit/compat.py says why each is needed)."""

import pathlib
import re

import keras
import numpy as np
import tensorflow as tf

from keras_onebit import compat

PACKAGE = pathlib.Path(compat.__file__).parent


def test_deferred_variables_are_collected_then_allocated():
    collected = []
    assert not compat.in_stateless_scope()
    with compat.deferred_variables(collected), keras.StatelessScope(initialize_variables=False):
        assert compat.in_stateless_scope()
        layer = keras.layers.Dense(3)
        layer.build((None, 5))
    assert not compat.in_stateless_scope()
    assert sorted(tuple(v.shape) for v in collected) == [(3,), (5, 3)]
    compat.initialize_deferred(collected)
    assert keras.ops.convert_to_numpy(layer.kernel).shape == (5, 3)
    # Keras' own list is back in place: a later deferred variable does not land in ours
    with keras.StatelessScope(initialize_variables=False):
        keras.layers.Dense(2).build((None, 4))
    assert len(collected) == 2


def test_metrics_built_from_a_plain_batch():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse", metrics=["mae"])
    compat.build_metrics_from_batch(model, (np.zeros((2, 4), "float32"),
                                            np.zeros((2, 2), "float32"), None))
    assert any(m.name == "compile_metrics" and m.built for m in model.metrics)
    compat.skip_symbolic_build(model)
    history = model.fit(np.zeros((4, 4), "float32"), np.zeros((4, 2), "float32"), verbose=0)
    assert set(history.history) == {"loss", "mae"}


def test_low_bit_qat_flag_is_a_converter_attribute():
    converter = tf.lite.TFLiteConverter.from_concrete_functions([], None)
    assert hasattr(converter, "_experimental_low_bit_qat")  # the flag TensorFlow reads
    compat.enable_low_bit_qat(converter)
    assert converter._experimental_low_bit_qat is True


def test_no_private_api_outside_compat():
    """No `keras.src` import and no `._name` of a Keras / TensorFlow object elsewhere."""
    pattern = re.compile(r"keras\.src|\b(?:model|converter|v|layer|tf|keras)\._[a-z]")
    found = [f"{path.relative_to(PACKAGE)}:{n}" for path in PACKAGE.rglob("*.py")
             if path.name != "compat.py"
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if pattern.search(line) and not line.lstrip().startswith("#")]
    assert not found, found
