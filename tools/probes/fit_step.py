"""docs/MAINTAINING.md (2026-12-07, AVX2 EPYC): a plain fit of the fully binary bireal_20_2 outside train, one core;
printed tensorflow 8.21, jax 8.52, torch 6.31 s/step (train itself: tools/probes/train_step_backends.sh).

    OMP_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 KERAS_BACKEND=torch \
        taskset -c 1 .venv/bin/python tools/probes/fit_step.py 5
"""
import os, sys, time
import numpy as np
import keras
from keras_onebit import models
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 6
model = models.bireal_20_2(binary=True, classifier_activation=None)
model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
rng = np.random.default_rng(0)
x = rng.uniform(0, 255, (125 * (steps + 2), 32, 32, 3)).astype("float32")
y = rng.integers(0, 10, len(x))
model.fit(x[:250], y[:250], batch_size=125, epochs=1, verbose=0)  # compile + warm up
t = time.perf_counter()
model.fit(x[250:], y[250:], batch_size=125, epochs=1, verbose=0)
print(keras.backend.backend(), f"{(time.perf_counter() - t) / steps:.2f} s/step")
