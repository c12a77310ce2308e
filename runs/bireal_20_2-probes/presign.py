"""The residual stream where each binary conv takes its sign: its std and the share of values inside
ApproxSign's window [-1, 1) (outside, the activation gradient is 0), on 200 test images. From the root:
    .venv/bin/python runs/bireal_20_2-probes/presign.py runs/bireal_20_2-cifar10-1bit/checkpoint.keras
(presign.log: the epoch-20 checkpoint)."""
import os; os.environ["TF_CPP_MIN_LOG_LEVEL"]="3"
import numpy as np, keras, sys
from keras_onebit import data as datasets
from keras_onebit.layers import BinaryConv2D
m = keras.models.load_model(sys.argv[1])
d = datasets.load_dataset("cifar10")
x = d["x_test"][:200].astype("float32")
convs = [l for l in m.layers if isinstance(l, BinaryConv2D)]
probe = keras.Model(m.input, [l.input for l in convs])
outs = probe.predict(x, verbose=0, batch_size=100)
for l, o in zip(convs, outs):
    o = np.asarray(o, np.float32)
    inside = np.mean((o >= -1) & (o < 1))
    print(f"{l.name:24s} std {o.std():6.2f}  inside[-1,1) {inside:.2f}")
