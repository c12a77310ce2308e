#!/usr/bin/env bash
# Issue 15: the teacher of the WRN-20-2 runs (knowledge distillation in their last warm-restart cycle,
# epochs 31-62): the authors' one-bit WRN-20-10 (Keras weights, 96.3% on the 1000 exact CIFAR-10 test
# images), run once as its int8 TFLite export over the 50,000 training images and their mirror images.
# Writes runs/wrn_20_2-cifar10-e62-teacher.npy, which both runs of launch_wrn_20_2_e62.sh read.
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
.venv/bin/python -m keras_onebit teacher --model ../shared/reference/mcdonnell-wrn-20-10/CIFAR10_allparams.mat \
    --dataset cifar10 --format int8 --threads 1 --out runs/wrn_20_2-cifar10-e62-teacher.npy \
    > runs/wrn_20_2-cifar10-e62-teacher.log 2>&1
