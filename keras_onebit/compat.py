"""The private Keras and TensorFlow APIs keras_onebit needs, and why, in one place.

Nothing else in the package imports `keras.src` or touches a `._` attribute of a Keras or
TensorFlow object. Each function names the public API it stands in for and why that does not do.
`tests/test_compat.py` exercises each one against the installed Keras and TensorFlow, so an
upgrade that changes or removes one fails there, by name, instead of deep inside `load_packed`,
a multi-worker run or an int4 export.

- `in_stateless_scope()`, `deferred_variables(budget)`, `initialize_deferred(variables)`:
  `load_packed` builds an architecture from an untrusted archive with its variables deferred
  (shapes, no memory) and counts them as they are created. `keras.StatelessScope(
  initialize_variables=False)` is the public half; whether such a scope is active, the list Keras
  keeps of the variables it deferred, and the call that allocates one, have no public API.
- `build_metrics_from_batch(model, batch)`, `skip_symbolic_build(model)`: Keras 3 `fit` under
  `MultiWorkerMirroredStrategy` (keras-team/keras#20585) builds its metrics from a per-replica
  batch and fails; no public hook replaces that step.
- `enable_low_bit_qat(converter)`: the TFLite converter keeps the exact +-7 values of int4
  kernels only with this experimental flag; it has no public switch.
"""

import contextlib

UNINITIALIZED = "uninitialized_variables"  # Keras' global list of deferred variables


def in_stateless_scope():
    """Whether a `keras.StatelessScope` is active (Keras has no public query).

    Returns:
        True inside a stateless scope.
    """
    from keras.src.backend.common.stateless_scope import in_stateless_scope as active

    return active()


@contextlib.contextmanager
def deferred_variables(collector):
    """Inside the block, Keras appends each variable it defers to `collector` (a list, or a
    list subclass that refuses some) instead of its own global list, restored after.

    Args:
        collector: the list that receives the deferred variables.

    Yields:
        `collector`.
    """
    from keras.src.backend.common import global_state

    pending = global_state.get_global_attribute(UNINITIALIZED, [], set_to_default=True)
    global_state.set_global_attribute(UNINITIALIZED, collector)
    try:
        yield collector
    finally:
        global_state.set_global_attribute(UNINITIALIZED, pending)


def initialize_deferred(variables):
    """Allocates the variables a `keras.StatelessScope(initialize_variables=False)` deferred.

    Args:
        variables: Keras variables (those already holding a value are left as they are).
    """
    for v in variables:
        if v._value is None:
            v._deferred_initialize()


def build_metrics_from_batch(model, batch):
    """Builds a compiled model's metrics from one plain (x, y, sample_weight) batch, the step
    `fit` would otherwise take from a per-replica batch.

    Args:
        model: a compiled Keras model.
        batch: (x, y, sample_weight) tensors of a few examples.
    """
    model._symbolic_build(data_batch=batch)


def skip_symbolic_build(model):
    """Makes `fit` skip its own metrics build (done by `build_metrics_from_batch`).

    Args:
        model: a Keras model.
    """
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


def enable_low_bit_qat(converter):
    """Makes a TFLite converter keep quantization-aware low-bit (int4) weights exact.

    Args:
        converter: a `tf.lite.TFLiteConverter`.
    """
    converter._experimental_low_bit_qat = True
