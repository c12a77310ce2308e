#!/usr/bin/env bash
# WRN-20-2 on CIFAR-10 for 14 epochs (three warm-restart cycles), one-bit and float twin side by side,
# one thread each. The hub entries are written afterwards from final.keras with --resume --hub.
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
PY=.venv/bin/python
$PY -m keras_onebit train --model wrn_20_2 --dataset cifar10 --epochs 14 --threads 1 --verbose 2 \
    --out runs/wrn_20_2-cifar10-1bit > runs/wrn_20_2-cifar10-1bit.log 2>&1 &
$PY -m keras_onebit train --model wrn_20_2 --dataset cifar10 --epochs 14 --float --threads 1 --verbose 2 \
    --out runs/wrn_20_2-cifar10-float > runs/wrn_20_2-cifar10-float.log 2>&1 &
wait
