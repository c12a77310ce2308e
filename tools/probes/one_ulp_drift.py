"""test_distributed probe (2026-12-07): two single-device runs whose starting weights differ by one ulp,
after 1 and 2 steps. Printed 5.8e-6 / 1.5e-5 (1bit) and 4.9e-6 / 4.0e-4 (float) on the AVX2 EPYC.

    KERAS_BACKEND=jax JAX_PLATFORMS=cpu .venv/bin/python tools/probes/one_ulp_drift.py 1bit|float
"""
import sys, numpy as np, keras, keras_onebit
from keras_onebit.training import loop
from keras_onebit.training.loop import RunConfig, fit
make = loop.make_model
def nudged(config):
    model = make(config)
    for w in model.trainable_weights:
        v = np.asarray(w)
        w.assign(np.nextafter(v, np.inf, dtype=v.dtype))
    return model
def run(steps, out, nudge):
    keras.utils.set_random_seed(0)
    loop.make_model = nudged if nudge else make
    config = RunConfig(model="wrn_20_1", epochs=1, batch_size=40, train_limit=40 * steps,
                       binary=sys.argv[1] == "1bit", test_limit=200, out_dir=out, verbose=0)
    _, model = fit(config, resume=False)
    return [np.asarray(w) for w in model.trainable_weights]
for steps in (1, 2):
    a, b = run(steps, f"/tmp/probe_p{steps}a", False), run(steps, f"/tmp/s11/p{steps}b", True)
    print(sys.argv[1], "steps", steps, "drift", max(float(np.abs(p - q).max()) for p, q in zip(a, b)))
