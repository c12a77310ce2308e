"""Do the fully binary run's binary kernels move too little? tools/probes/latent_weights.py found the latent
weights of the 126-epoch run at their initial magnitudes (median |w| 0.034 before and after; median change
0.0046 from epoch 30 to 126) with 0.05-0.1% of the signs flipping per epoch. The forward pass takes sign(w) and a
per-channel scale that the batch norm after each conv cancels, and the gradient reaching w does not depend on
w's scale, so dividing the initial latent weights by S is SGD with S times the learning rate for those weights
alone (the stem, batch norms and classifier unchanged). From scratch for the first warm-restart cycle (2 epochs,
SGD max lr 0.1, the run's shape; first_cycle.py), the binary kernels divided by S. From the repository root:
    .venv/bin/python runs/bireal_20_2-probes/kernel_scale.py 30 800   (kernel_scale30.log)
The run itself: 33.7% after epoch 1, 43.2% after epoch 2 on the 1000 exact test images; 50.3% after epoch 6.
Printed on the 2-core AMX Xeon (2026-12-08, both threads, nothing else running), on the 1000 exact test images:
S = 3: 39.0% / 47.4% after 400 / 800 steps (kernel_scale3.log); again with 2400 steps (the first two cycles, 2+4
epochs, kernel_scale3_6epochs.log): 40.3% / 47.9% / 52.9% / 56.0% after epochs 1 / 2 / 5 / 6 (the run: 33.7% /
43.2% / 49.9% / 50.3%). S = 10 and S = 30: chance (10.3%) from step 200 on (kernel_scale10.log; the S = 30 probe
stopped after 400 steps, kernel_scale30.log). The equivalence holds while the batch norm's epsilon (1e-3) is small
against the convs' output variance (about 1.3 / S^2 for he_normal kernels and +-1 inputs): about 1% of it for
S = 3, 8% for S = 10, 70% for S = 30; why S = 10 fails (too many flips, or that) was not measured."""
import sys
from first_cycle import probe, set_threads  # first: it quiets TensorFlow's C++ logs
import keras
from keras_onebit.layers import binary_kernels
from keras_onebit.training.schedules import WarmRestartCosine

scale, steps = float(sys.argv[1]), int(sys.argv[2])
set_threads()


def shrink(net):
    for layer in binary_kernels(net).values():
        layer.kernel.assign(layer.kernel / scale)


schedule = WarmRestartCosine(400, 0.1, 0.1 * 1e-4, 2)
probe(f"kernels / {scale:g}", keras.optimizers.SGD(schedule, momentum=0.9), steps, prepare=shrink)
