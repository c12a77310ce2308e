#!/usr/bin/env bash
# WRN-20-2 on CIFAR-10 for 14 epochs (three warm-restart cycles), one-bit and float twin side by side,
# one thread each, bfloat16 activations (AMX; the shipped model is rebuilt in float32). The hub entries
# are written afterwards from the epoch-14 checkpoints by runs/finish_wrn_20_2.sh.
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
PY=.venv/bin/python
COMMON="--model wrn_20_2 --dataset cifar10 --epochs 14 --threads 1 --dtype_policy mixed_bfloat16"
$PY -m keras_onebit train $COMMON --verbose 2 \
    --out runs/wrn_20_2-cifar10-1bit > runs/wrn_20_2-cifar10-1bit.log 2>&1 &
$PY -m keras_onebit train $COMMON --float --verbose 2 \
    --out runs/wrn_20_2-cifar10-float > runs/wrn_20_2-cifar10-float.log 2>&1 &
wait
