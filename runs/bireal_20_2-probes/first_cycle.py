"""The shared part of optimizer.py and window.py: the fully binary bireal_20_2 from scratch for its first
warm-restart cycle (cross-entropy, flip+crop, batch 125, bfloat16, seed 0), accuracy on the 1000 exact test
images every 100 steps, in one fit (the data iterator runs on; a new fit would restart it)."""
import os, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras, tensorflow as tf
from keras_onebit import data as datasets
from keras_onebit.models import bireal
from keras_onebit.training.pipeline import train_dataset, eval_dataset


def set_threads():
    threads = int(os.environ.get("THREADS", "2"))
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def probe(label, optimizer, steps, prepare=None):
    """Trains `steps` steps with `optimizer`, printing `label`, the step and both accuracies every 100;
    `prepare(net)`, when given, changes the fresh net first (kernel_scale.py)."""
    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    net = bireal.bireal_20_2(binary=True, classes=10)
    if prepare is not None:
        prepare(net)
    d = datasets.load_dataset("cifar10")
    mask = d["test_exact_mask"]
    xv, yv = d["x_test"][mask], d["y_test"][mask]
    net.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ds = train_dataset(d["x_train"], d["y_train"], 125, 0, "flip_crop")
    t = time.time()

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            p = self.model.predict(eval_dataset(xv, yv), verbose=0)
            print(f"{label} {(epoch + 1) * 100} steps ({time.time() - t:.0f}s): train {logs['accuracy']:.3f} "
                  f"test {(p.argmax(-1) == yv).mean():.3f}", flush=True)

    net.fit(ds, epochs=steps // 100, steps_per_epoch=100, verbose=0, callbacks=[Probe()])
