"""Is SGD the fully binary run's bottleneck? The fully binary bireal_20_2 from scratch for its first warm-restart
cycle (2 epochs, 800 steps; cross-entropy, flip+crop, batch 125, bfloat16, the run's cosine shape), with
"sgd" (the run's: momentum 0.9, max lr 0.1) or "adam" (Adam, max lr LR, as Bi-Real's successors train binary
nets), accuracy on the 1000 exact test images every 100 steps. From the repository root:
    THREADS=1 .venv/bin/python runs/bireal_20_2-probes/optimizer.py adam 0.001 800   (adam1e-3.log)
    THREADS=1 .venv/bin/python runs/bireal_20_2-probes/optimizer.py sgd 0.02 800     (sgd0.02.log)
The run itself: 33.7% after epoch 1, 43.2% after epoch 2 (runs/bireal_20_2-cifar10-1bit/log.csv)."""
import os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras, tensorflow as tf
from keras_onebit import data as datasets
from keras_onebit.models import bireal
from keras_onebit.training.pipeline import train_dataset, eval_dataset
from keras_onebit.training.schedules import WarmRestartCosine
opt_name, lr, steps = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
threads = int(os.environ.get("THREADS", "2"))
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(threads)
keras.utils.set_random_seed(0)
keras.mixed_precision.set_global_policy("mixed_bfloat16")
net = bireal.bireal_20_2(binary=True, classes=10)
d = datasets.load_dataset("cifar10")
mask = d["test_exact_mask"]
xv, yv = d["x_test"][mask], d["y_test"][mask]
schedule = WarmRestartCosine(400, lr, lr * 1e-4, 2)
opt = keras.optimizers.Adam(schedule) if opt_name == "adam" else keras.optimizers.SGD(schedule, momentum=0.9)
net.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
ds = train_dataset(d["x_train"], d["y_train"], 125, 0, "flip_crop")
t = time.time()


class Probe(keras.callbacks.Callback):  # one fit: the data iterator runs on (a new fit would restart it)
    def on_epoch_end(self, epoch, logs=None):
        p = self.model.predict(eval_dataset(xv, yv), verbose=0)
        print(f"{opt_name} {lr} {(epoch + 1) * 100} steps ({time.time() - t:.0f}s): train {logs['accuracy']:.3f} "
              f"test {(p.argmax(-1) == yv).mean():.3f}", flush=True)


net.fit(ds, epochs=steps // 100, steps_per_epoch=100, verbose=0, callbacks=[Probe()])
