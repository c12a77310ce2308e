"""One epoch of the fully binary bireal_20_2 from scratch, as the 62-epoch run's epoch 1 (SGD, warm-restart
cosine from max_lr 0.1, cross-entropy, flip+crop, batch 125, bfloat16), with the residual stream as is (Bi-Real)
or clamped by hard_tanh after every block (IR-Net / RBNN's CIFAR ResNet-20). From the repository root:
    .venv/bin/python runs/bireal_20_2-probes/stream_clip.py hard_tanh|identity 400   (ht.log, id.log)"""
import os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np, keras, tensorflow as tf
from keras import layers
from keras_onebit import data as datasets
from keras_onebit.models import bireal
from keras_onebit.training.pipeline import train_dataset, eval_dataset
from keras_onebit.training.schedules import WarmRestartCosine
variant, steps = sys.argv[1], int(sys.argv[2])
tf.config.threading.set_intra_op_parallelism_threads(2)
if variant == "hard_tanh":
    block = bireal._block
    def clamped(*args, **kwargs):
        out = block(*args, **kwargs)
        return layers.Activation("hard_tanh", name=args[3] + "_clamp")(out)
    bireal._block = clamped
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
for k in range(steps // 100):
    h = net.fit(ds, epochs=1, steps_per_epoch=100, verbose=0)
    p = net.predict(eval_dataset(xv, yv), verbose=0)
    print(f"{variant} {(k + 1) * 100} steps ({time.time() - t:.0f}s): train {h.history['accuracy'][-1]:.3f} "
          f"test {(p.argmax(-1) == yv).mean():.3f}", flush=True)
