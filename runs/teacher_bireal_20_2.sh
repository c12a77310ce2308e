#!/usr/bin/env bash
# Issue 27: the teacher of the bireal_20_2 runs (knowledge distillation from epoch 7 on): the authors'
# one-bit WRN-20-10 (Keras weights, 96.3% on the 1000 exact CIFAR-10 test images), run once as its int8
# TFLite export over the 50,000 training images and their mirror images, as for the WRN-20-2 default.
# Writes runs/bireal_20_2-cifar10-teacher.npy, which both runs of launch_bireal_20_2.sh read.
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
OUT=runs/bireal_20_2-cifar10-teacher.npy
[ -f $OUT ] && exit 0
.venv/bin/python -m keras_onebit teacher --model ../shared/reference/mcdonnell-wrn-20-10/CIFAR10_allparams.mat \
    --dataset cifar10 --format int8 --threads 1 --out $OUT > runs/bireal_20_2-cifar10-teacher.log 2>&1
