#!/usr/bin/env bash
# Continues both CIFAR-10 runs from their epoch-14 checkpoints to epoch 30 (end of the fourth SGDR cycle).
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
PY=.venv/bin/python
$PY -m keras_onebit train --model wrn_20_1 --dataset cifar10 --epochs 30 --threads 1 --verbose 2 \
    --out runs/wrn_20_1-cifar10-1bit --resume > runs/wrn_20_1-cifar10-1bit-30.log 2>&1 &
$PY -m keras_onebit train --model wrn_20_1 --dataset cifar10 --epochs 30 --float --threads 1 --verbose 2 \
    --out runs/wrn_20_1-cifar10-float --resume > runs/wrn_20_1-cifar10-float-30.log 2>&1 &
wait
