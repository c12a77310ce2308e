"""Fully binary probe (2026-12-07): does recomputing batch norm's statistics after training
help the hub's `bireal_20_2-cifar10-1bit` (62 epochs)? The run trained in bfloat16, the hub
rebuilds it in float32, and the authors' MATLAB code recomputes the statistics
(`--recompute_bn_batches N`): the float32 model's own batch statistics over augmented training
batches (seed 1) replace the running averages, then it is evaluated.

Printed on the AMX Xeon (one thread, beside the training): as shipped 0.681 on the 1000 exact
test images and 0.6596 on all 10,000; over 50 batches of 125: 0.664 / 0.6513; over 200:
0.669 / 0.6568. Recomputing lowers it, so `runs/ship_bireal_20_2.sh` keeps the running averages.

    .venv/bin/python tools/probes/bn_recompute.py   (from the repository root, ../shared beside it)
"""
import os

os.environ["KERAS_ONEBIT_QUIET"] = "1"
import keras_onebit  # noqa: E402,F401  (quiet start before TensorFlow)

# isort: split
import tensorflow as tf  # noqa: E402

from keras_onebit import data  # noqa: E402
from keras_onebit.hub.loading import load  # noqa: E402
from keras_onebit.training import recompute_bn_statistics, train_dataset  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(1)
cifar = data.load_dataset("cifar10")
x, y, exact = cifar["x_test"].astype("float32"), cifar["y_test"], cifar["test_exact_mask"]


def accuracy(model):
    top = model.predict(x, batch_size=500, verbose=0).argmax(1)
    return (top[exact] == y[exact]).mean(), (top == y).mean()


for steps in (0, 50, 200):
    model = load("bireal_20_2-cifar10-1bit")
    if steps:
        batches = train_dataset(cifar["x_train"], cifar["y_train"], 125, seed=1)
        recompute_bn_statistics(model, batches, steps)
    on_exact, on_all = accuracy(model)
    print(f"BN recomputed over {steps} augmented batches of 125: exact {on_exact:.3f}, "
          f"all {on_all:.4f}", flush=True)
