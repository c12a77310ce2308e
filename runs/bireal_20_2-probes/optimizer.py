"""Is SGD the fully binary run's bottleneck? The fully binary bireal_20_2 from scratch for its first warm-restart
cycle (2 epochs, 800 steps; cross-entropy, flip+crop, batch 125, bfloat16, the run's cosine shape), with
"sgd" (the run's: momentum 0.9, max lr 0.1) or "adam" (Adam, max lr LR, as Bi-Real's successors train binary
nets), accuracy on the 1000 exact test images every 100 steps. From the repository root:
    THREADS=1 .venv/bin/python runs/bireal_20_2-probes/optimizer.py adam 0.001 800   (adam1e-3.log)
    THREADS=1 .venv/bin/python runs/bireal_20_2-probes/optimizer.py sgd 0.02 800     (sgd0.02.log)
The run itself: 33.7% after epoch 1, 43.2% after epoch 2 (runs/bireal_20_2-cifar10-1bit/log.csv)."""
import sys
from first_cycle import probe, set_threads  # first: it quiets TensorFlow's C++ logs
import keras
from keras_onebit.training.schedules import WarmRestartCosine
opt_name, lr, steps = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
set_threads()
schedule = WarmRestartCosine(400, lr, lr * 1e-4, 2)
opt = keras.optimizers.Adam(schedule) if opt_name == "adam" else keras.optimizers.SGD(schedule, momentum=0.9)
probe(f"{opt_name} {lr}", opt, steps)
