"""Issue 27 / test_distributed probe (2026-12-07): how far one step on one device moves when each device
would step on only its half of the batch (batch 20 vs 40); printed 1.1e-2 on the AVX2 EPYC.

    KERAS_BACKEND=jax JAX_PLATFORMS=cpu .venv/bin/python tools/probes/half_batch.py
"""
import sys, numpy as np, keras, keras_onebit
from keras_onebit.training.loop import RunConfig, fit
def run(batch, out):
    keras.utils.set_random_seed(0)
    config = RunConfig(model="wrn_20_1", epochs=1, batch_size=batch, train_limit=batch,
                       test_limit=200, strategy="default", out_dir=out, verbose=0)
    _, model = fit(config, resume=False)
    return [np.asarray(w) for w in model.trainable_weights]
full, half = run(40, "/tmp/probe_h40"), run(20, "/tmp/s11/h20")
print("HALF-BATCH DIFF", max(float(np.abs(a - b).max()) for a, b in zip(full, half)))
