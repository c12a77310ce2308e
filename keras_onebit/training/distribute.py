"""Distribution strategies for the training command.

`default` runs on one device; `mirrored` replicates over local devices
(every GPU, or the given `devices`); `multi_worker` spans hosts described
by the TF_CONFIG environment variable (each host runs the same command):
these are tf.distribute's. `data_parallel` is Keras' own
`keras.distribution.DataParallel` on the JAX backend (every local device, or
the given `devices`; several hosts after `jax.distributed.initialize()`).
"""

import contextlib
import json
import os

import keras

from keras_onebit import compat
from keras_onebit.errors import ConfigError
from keras_onebit.lazy import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker", "data_parallel")


class KerasDistribution:
    """A `keras.distribution.Distribution` where the loop expects a tf.distribute
    strategy: set for the whole process (Keras reads it in `fit` too), so `scope()`
    has nothing left to do."""

    def __init__(self, distribution):
        self.distribution = distribution
        if distribution is not None:  # None: the default, one device, nothing to set
            keras.distribution.set_distribution(distribution)

    def scope(self):
        return contextlib.nullcontext()


def data_parallel(devices=()):
    """`keras.distribution.DataParallel` over `devices` (default: all), JAX only."""
    if keras.backend.backend() != "jax":
        raise ConfigError(f"--strategy data_parallel is keras.distribution.DataParallel, for the "
                          f"JAX backend (Keras runs on {keras.backend.backend()!r}); on "
                          "TensorFlow use --strategy mirrored.")
    available = keras.distribution.list_devices()
    unknown = [d for d in devices if d not in available]
    if unknown:
        raise ConfigError(f"--devices {','.join(unknown)}: not a device of this process "
                          f"({', '.join(available)}).")
    return KerasDistribution(keras.distribution.DataParallel(devices=list(devices) or available))


def make_strategy(name, devices=()):
    if name == "data_parallel":
        return data_parallel(devices)
    if name == "default":
        if keras.backend.backend() != "tensorflow":
            return KerasDistribution(None)
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=list(devices) or None)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ConfigError("--strategy multi_worker needs TF_CONFIG (cluster and task).")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"Unknown strategy {name!r}: expected one of {STRATEGIES}.")


def _task():
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    return config.get("task", {})


def task_id():
    return int(_task().get("index", 0))


def is_chief():
    """True unless TF_CONFIG names this process a worker other than worker 0."""
    task = _task()
    return not task or task.get("type") == "chief" or (
        task.get("type") == "worker" and int(task.get("index", 0)) == 0)


def patch_for_multi_worker(model, strategy, x, y):
    """Works around keras-team/keras#20585 (Keras 3 `fit` under
    MultiWorkerMirroredStrategy), two failures seen with Keras 3.15:
    1. `fit` first all-reduces a per-replica data batch to build the metrics
       ("Attempt to convert a value (PerReplica...)"): build them here from a
       plain batch and skip that step;
    2. the step's scalar logs are all-reduced along axis 0 ("Invalid reduction
       dimension 0 for input with 0 dimensions"): give them that axis.
    """
    if isinstance(strategy, KerasDistribution) or not isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    with strategy.scope():
        compat.build_metrics_from_batch(model, (tf.cast(x[:2], tf.float32), y[:2], None))
    compat.skip_symbolic_build(model)
    for name in ("train_step", "test_step"):
        setattr(model, name, _with_vector_logs(getattr(model, name)))


def _with_vector_logs(step):
    def wrapped(data):
        return {k: tf.reshape(v, [1]) if v.shape.rank == 0 else v for k, v in step(data).items()}

    return wrapped
