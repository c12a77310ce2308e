"""Do the binary convs starve for gradient? After the first blocks only 29-36% of the pre-sign values lie in
ApproxSign's window [-1, 1) (presign.py), outside which no gradient passes. Here ApproxSign's window is widened
to [-K, K) with the same area (slope (2 / K)(1 - |x| / K)): the forward sign, and so the model and its exports,
unchanged. The fully binary bireal_20_2 from scratch for its first warm-restart cycle (2 epochs, 800 steps) with
the run's recipe (SGD, momentum 0.9, max lr 0.1, cross-entropy, flip+crop, batch 125, bfloat16), accuracy on the
1000 exact test images every 100 steps. From the repository root:
    THREADS=1 .venv/bin/python runs/bireal_20_2-probes/window.py 3 800   (window3.log)
The run itself (K = 1): 33.7% after epoch 1, 43.2% after epoch 2 (runs/bireal_20_2-cifar10-1bit/log.csv)."""
import os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras, tensorflow as tf
from keras import ops
from keras_onebit import data as datasets, quantizers
from keras_onebit.models import bireal
from keras_onebit.training.pipeline import train_dataset, eval_dataset
from keras_onebit.training.schedules import WarmRestartCosine
K, steps = float(sys.argv[1]), int(sys.argv[2])
threads = int(os.environ.get("THREADS", "2"))
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(threads)


def wide_approx_sign_gradient(x, g):
    inside = ops.cast(ops.abs(x) < K, g.dtype)
    return g * inside * (2.0 / K) * (1.0 - ops.abs(x) / K)


quantizers.approx_sign_gradient = wide_approx_sign_gradient  # ApproxSign looks it up at each call
keras.utils.set_random_seed(0)
keras.mixed_precision.set_global_policy("mixed_bfloat16")
net = bireal.bireal_20_2(binary=True, classes=10)
d = datasets.load_dataset("cifar10")
mask = d["test_exact_mask"]
xv, yv = d["x_test"][mask], d["y_test"][mask]
net.compile(optimizer=keras.optimizers.SGD(WarmRestartCosine(400, 0.1, 1e-5, 2), momentum=0.9),
            loss="sparse_categorical_crossentropy", metrics=["accuracy"])
ds = train_dataset(d["x_train"], d["y_train"], 125, 0, "flip_crop")
t = time.time()


class Probe(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        p = self.model.predict(eval_dataset(xv, yv), verbose=0)
        print(f"window {K} {(epoch + 1) * 100} steps ({time.time() - t:.0f}s): train {logs['accuracy']:.3f} "
              f"test {(p.argmax(-1) == yv).mean():.3f}", flush=True)


net.fit(ds, epochs=steps // 100, steps_per_epoch=100, verbose=0, callbacks=[Probe()])
