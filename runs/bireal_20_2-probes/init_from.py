"""Does Bi-Real's stage-wise start (binary net initialised from the trained ReLU twin) beat the from-scratch
SGD run? Binary bireal_20_2 from the twin's epoch-14 weights (optimizer "sgd" or "adam"), or from the binary
run's own checkpoint ("sgd_ckpt", "adam_ckpt"), STEPS steps at a constant lr with the run's distillation loss,
accuracy on the 1000 exact test images every 100 steps. From the repository root:
    .venv/bin/python runs/bireal_20_2-probes/init_from.py OPTIMIZER LR STEPS
(logs: sgd001.log = sgd 0.01 300, adam5e-4.log = adam 0.0005 300, adam_ckpt.log = adam_ckpt 0.0005 300,
the last stopped after 200 steps)."""
import os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np, keras
import tensorflow as tf
from keras_onebit import models, data as datasets
from keras_onebit.training import loop
from keras_onebit.training.bireal import copy_matching_weights
from keras_onebit.training.pipeline import train_dataset, eval_dataset
from keras_onebit.training.distill import DistillationLoss, LabelAccuracy, with_teacher
opt_name, lr, steps = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
threads = int(os.environ.get("THREADS", "2"))
tf.config.threading.set_intra_op_parallelism_threads(threads)
d = datasets.load_dataset("cifar10")
mask = d["test_exact_mask"]
xv, yv = d["x_test"][mask], d["y_test"][mask]
teacher = np.load("runs/bireal_20_2-cifar10-teacher.npy", allow_pickle=False)
keras.mixed_precision.set_global_policy("mixed_bfloat16")
twin = keras.models.load_model("runs/bireal_20_2-cifar10-float/checkpoint.keras")
net = models.bireal_20_2(binary=True, classes=10, input_shape=(32, 32, 3))
if opt_name.endswith("_ckpt"):
    net = keras.models.load_model("runs/bireal_20_2-cifar10-1bit/checkpoint.keras")
    opt_name = opt_name[:-5]
elif opt_name != "scratch_sgd":
    copy_matching_weights(twin, net)
def acc(m):
    p = m.predict(eval_dataset(xv, yv), verbose=0)
    return float((p.argmax(-1) == yv).mean())
opt = keras.optimizers.Adam(lr) if opt_name == "adam" else keras.optimizers.SGD(lr, momentum=0.9)
net.compile(optimizer=opt, loss=DistillationLoss(4.0, 0.9), metrics=[LabelAccuracy()])
print("twin", acc(twin), "binary at init", acc(net), flush=True)
ds = train_dataset(d["x_train"], with_teacher(d["y_train"], teacher), 125, 1, "flip_crop")
t = time.time()
for k in range(steps // 100):
    h = net.fit(ds, epochs=1, steps_per_epoch=100, verbose=0)
    print(f"{(k + 1) * 100} steps ({time.time() - t:.0f}s): train {[v for k, v in h.history.items() if 'acc' in k][0][-1]:.3f} "
          f"test {acc(net):.3f}", flush=True)
