"""TensorFlow, imported when first used: only export (TFLite), the tf.data input
pipeline, tf.distribute and stochastic one-bit storage need it, so a program on
Keras's JAX or PyTorch backend imports and trains with keras_onebit without it.

    from keras_onebit.lazy import tensorflow as tf   # a module proxy
    tf.constant(1)                                   # imports TensorFlow here

A missing TensorFlow is one `MissingDependencyError` line at that first use,
naming what needed it.
"""

import importlib


class LazyModule:
    """A module imported on its first attribute access."""

    def __init__(self, name, why):
        self._name, self._why, self._module = name, why, None

    def _load(self):
        if self._module is None:
            from keras_onebit.errors import MissingDependencyError

            try:
                self._module = importlib.import_module(self._name)
            except ImportError as e:
                raise MissingDependencyError(
                    f"{self._why} needs TensorFlow (any flavour: pip install "
                    "'keras_onebit[cpu]'); Keras itself runs on JAX or PyTorch without it."
                ) from e
        return self._module

    def __getattr__(self, attr):
        return getattr(self._load(), attr)


tensorflow = LazyModule("tensorflow", "This feature (export, tf.data input pipeline, "
                        "tf.distribute or stochastic one-bit storage)")
