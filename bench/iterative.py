"""Iterative layer binarization (Lan, arXiv 2111.07046) vs binary from the start.

    python bench/iterative.py [--epochs 12] [--epochs_per_layer 3] [--seeds 2]

A small version of the paper's MNIST setting: MLP 784-300-100-10, every
layer one-bit at the end (plain sign, as in the paper), batch norm after the
hidden layers, Adam, batch 100. Variants trained with the same budget:
binary from the start, iterative forward / reverse / random order, and the
float network for reference. Prints and saves the final test error.
"""

import os
import sys

os.environ.setdefault("KERAS_ONEBIT_QUIET", "1")  # no TensorFlow start-up lines (_startup.py)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keras_onebit  # noqa: E402, F401  first: it loads TensorFlow and Keras quietly

# isort: split

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from common import save  # noqa: E402

import keras_onebit as kob  # noqa: E402
from keras_onebit.training import IterativeBinarization  # noqa: E402

flags.DEFINE_integer("epochs", 12, "Training epochs of every variant.")
flags.DEFINE_integer("epochs_per_layer", 3, "E: epochs between two layer switches.")
flags.DEFINE_integer("seeds", 2, "Runs per variant (mean reported).")
FLAGS = flags.FLAGS

VARIANTS = ("float", "binary_from_start", "forward", "reverse", "random")


def mlp(variant):
    binary = variant != "float"
    switchable = variant in ("forward", "reverse", "random")
    inputs = keras.Input((28, 28), name="pixels")
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    for units in (300, 100):
        x = kob.BinaryDense(units, binary=binary, scale="none", switchable=switchable)(x)
        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = kob.BinaryDense(10, binary=binary, scale="none", switchable=switchable)(x)
    x = keras.layers.BatchNormalization(center=False, scale=False)(x)
    return keras.Model(inputs, keras.layers.Softmax()(x))


def run(variant, seed, data):
    keras.utils.set_random_seed(seed)
    model = mlp(variant)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    callbacks = []
    if variant in ("forward", "reverse", "random"):
        callbacks.append(IterativeBinarization(variant, FLAGS.epochs_per_layer, seed=seed,
                                               verbose=0))
    model.fit(data["x_train"], data["y_train"], batch_size=100, epochs=FLAGS.epochs,
              callbacks=callbacks, verbose=0)
    assert variant == "float" or all(kob.layers.is_binary(layer) for layer in model.layers
                                     if isinstance(layer, kob.BinaryDense))
    _, accuracy = model.evaluate(data["x_test"], data["y_test"], verbose=0)
    return 100.0 * (1.0 - accuracy)


def main(argv):
    del argv
    data = kob.data.load_dataset("mnist")
    result = {}
    for variant in VARIANTS:
        errors = [run(variant, seed, data) for seed in range(FLAGS.seeds)]
        result[variant] = {"test_error_percent": errors, "mean": float(np.mean(errors))}
        print(f"{variant:>18}: test error {np.mean(errors):.2f}% "
              f"({', '.join(f'{e:.2f}' for e in errors)})", flush=True)
    path = save("iterative", {"epochs": FLAGS.epochs, "epochs_per_layer": FLAGS.epochs_per_layer,
                              "variants": result})
    print("wrote", path)


if __name__ == "__main__":
    app.run(main)
