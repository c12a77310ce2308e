"""Two-device vs one-device JAX runs, more than one step (2026-12-07, AVX2 EPYC): "1bit 2 40" printed
1.1e-5, "1bit 1 80" 6.1e-5, "float 2 40" 1.7e-5; single-device runs repeat bit for bit.

    KERAS_BACKEND=jax JAX_PLATFORMS=cpu XLA_FLAGS=--xla_force_host_platform_device_count=2 \
        .venv/bin/python tools/probes/two_device_drift.py 1bit 2 40
"""
import sys, numpy as np, keras, keras_onebit
from keras_onebit.training.loop import RunConfig, fit
binary = sys.argv[1] == "1bit"
def run(strategy, out):
    keras.utils.set_random_seed(0)
    config = RunConfig(model="wrn_20_1", epochs=int(sys.argv[2]), batch_size=40, train_limit=int(sys.argv[3]), binary=binary,
                       test_limit=200, strategy=strategy, out_dir=out, verbose=0)
    _, model = fit(config, resume=False)
    keras.distribution.set_distribution(None)
    return [np.asarray(w) for w in model.trainable_weights], [w.path for w in model.trainable_weights]
a, names = run("default", "/tmp/probe_t1")
b, _ = run("default", "/tmp/probe_t2")
c, _ = run("data_parallel", "/tmp/probe_t3")
def report(tag, x, y):
    d = [float(np.abs(p - q).max()) for p, q in zip(x, y)]
    i = int(np.argmax(d))
    print(tag, max(d), names[i])
report("single-vs-single", a, b)
report("parallel-vs-single", c, a)
