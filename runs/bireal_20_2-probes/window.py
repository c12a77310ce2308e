"""Do the binary convs starve for gradient? After the first blocks only 29-36% of the pre-sign values lie in
ApproxSign's window [-1, 1) (presign.py), outside which no gradient passes. Here ApproxSign's window is widened
to [-K, K) with the same area (slope (2 / K)(1 - |x| / K)): the forward sign, and so the model and its exports,
unchanged. The fully binary bireal_20_2 from scratch for its first warm-restart cycle (2 epochs, 800 steps) with
the run's recipe (SGD, momentum 0.9, max lr 0.1, cross-entropy, flip+crop, batch 125, bfloat16), accuracy on the
1000 exact test images every 100 steps. From the repository root:
    THREADS=1 .venv/bin/python runs/bireal_20_2-probes/window.py 3 800   (window3.log)
The run itself (K = 1): 33.7% after epoch 1, 43.2% after epoch 2 (runs/bireal_20_2-cifar10-1bit/log.csv)."""
import sys
from first_cycle import probe, set_threads  # first: it quiets TensorFlow's C++ logs
import keras
from keras import ops
from keras_onebit import quantizers
from keras_onebit.training.schedules import WarmRestartCosine
K, steps = float(sys.argv[1]), int(sys.argv[2])
set_threads()


def wide_approx_sign_gradient(x, g):
    inside = ops.cast(ops.abs(x) < K, g.dtype)
    return g * inside * (2.0 / K) * (1.0 - ops.abs(x) / K)


quantizers.approx_sign_gradient = wide_approx_sign_gradient  # ApproxSign looks it up at each call
probe(f"window {K}", keras.optimizers.SGD(WarmRestartCosine(400, 0.1, 1e-5, 2), momentum=0.9), steps)
