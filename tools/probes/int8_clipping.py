"""test_export_tflite probe (2026-12-07): why int8, int4 and packed_int8 flip one image that is no near-tie.

Trains the test's tiny WRN-8-1 as its fixture does (2 epochs, 4000 images, BN calibrated on 2000), compares
float and int8 with Keras on 500 test images (exact ones first), finds the image with the largest int8 logit
error, lists the layers whose range on it leaves the range the calibration images gave, and counts the flips
that are no near-tie (outside the quarter of smallest top-2 margins) inside and outside the calibrated pooled
range. Printed on the AMX Xeon: 10 of the 500 images leave the pooled range; one flips at the 84th percentile
of margins in int8, int4 and packed_int8 (pooled features up to 3.15 where calibration reached 2.36); every
other flip was a near-tie. This gave `assert_only_near_ties_flip` its exemption.

    .venv/bin/python tools/probes/int8_clipping.py      (from the repository root, ../shared beside it)
"""
import os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras, numpy as np
import keras_onebit as kob
from keras_onebit.export import report, tflite
from keras_onebit.export.fallback import calibrate_batchnorm
from keras_onebit.export.tflite import REPRESENTATIVE_SAMPLES as N
d = np.load("../shared/data/cifar10.npz", allow_pickle=False); c = {k: d[k] for k in d.files if k != "note"}
mask = c["test_exact_mask"]
order = np.concatenate([np.flatnonzero(mask), np.flatnonzero(~mask)])
train = c["x_train"][:4000].astype("float32"); labels = c["y_train"][:4000].astype("int64")
test = c["x_test"][order[:500]].astype("float32")
keras.utils.set_random_seed(0)
model = kob.models.wrn(8, 1, classifier_activation=None)
model.compile(keras.optimizers.Adam(2e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(train, labels, batch_size=64, epochs=2, verbose=0)
model = calibrate_batchnorm(model, train[:2000])
ref = model.predict(test, batch_size=100, verbose=0)
top2 = np.sort(ref, axis=1)[:, -2:]; margin = top2[:, 1] - top2[:, 0]
acc = (ref.argmax(1) == c["y_test"][order[:500]].reshape(-1)).mean()
print("keras acc", acc, "margin q25", np.quantile(margin, .25), "logit scale", np.abs(ref).max())
for fmt in ["float", "int8"]:
    out = report.litert_outputs(tflite.convert(model, fmt, train[:200]), test)
    r = report.compare(ref, out); fl = out.argmax(1) != ref.argmax(1)
    ranks = [(margin < m).mean() for m in margin[fl]]
    print(fmt, r, "flipped margin ranks", np.round(sorted(ranks), 3))
    err = np.abs(out - ref).max(1)
    print("  per-image max abs err: median %.3f, p99 %.3f, max %.3f" % (np.median(err), np.quantile(err, .99), err.max()))
int8 = tflite.convert(model, "int8", train[:200])
out = report.litert_outputs(int8, test)
err = np.abs(out - ref).max(1); i = int(err.argmax())
print("outlier image", i, "err", err[i], "margin rank", (margin < margin[i]).mean())
feats = keras.Model(model.inputs, [l.output for l in model.layers[1:]])
cal = feats.predict(train[:200], batch_size=100, verbose=0)
one = feats.predict(test[i:i+1], verbose=0)
for l, a, b in zip(model.layers[1:], cal, one):
    lo, hi, x_lo, x_hi = a.min(), a.max(), b.min(), b.max()
    if x_hi > hi or x_lo < lo:
        print(f"  {l.name:30s} cal [{lo:.3f}, {hi:.3f}]  image [{x_lo:.3f}, {x_hi:.3f}]")
for n in (200, 1000):
    o = report.litert_outputs(tflite.convert(model, "int8", train[:n]), test)
    e = np.abs(o - ref).max(1)
    print("calibrated on", n, "images: outlier err", e[i], "max", e.max(), "agree", (o.argmax(1) == ref.argmax(1)).mean())
pool = keras.Model(model.inputs, model.get_layer("pool").output)
pc = pool.predict(train[:N], verbose=0); pt = pool.predict(test, verbose=0)
outside = (pt.min(1) < pc.min()) | (pt.max(1) > pc.max())
print("N", N, "test images outside the pool range:", outside.sum(), "of", len(test))
near = margin <= np.quantile(margin, .25)
for fmt in ["int8", "int4", "packed_int8"]:
    o = report.litert_outputs(tflite.convert(model, fmt, train[:200]), test)
    fl = o.argmax(1) != ref.argmax(1)
    print(fmt, "flips", fl.sum(), "not near-tie", (fl & ~near).sum(), "not near-tie and inside range", (fl & ~near & ~outside).sum())
