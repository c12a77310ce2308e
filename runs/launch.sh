#!/usr/bin/env bash
# Background training runs of this session (see pretrained/*/MODEL_CARD.md for the commands).
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
PY=.venv/bin/python
( $PY -m keras_onebit train --model wrn_20_1 --dataset cifar10 --epochs 30 --threads 1 --verbose 2 \
      --out runs/wrn_20_1-cifar10-1bit > runs/wrn_20_1-cifar10-1bit.log 2>&1
  $PY -m keras_onebit train --model wrn_20_1 --dataset mnist --epochs 6 --augmentation none --threads 1 \
      --verbose 2 --out runs/wrn_20_1-mnist-1bit > runs/wrn_20_1-mnist-1bit.log 2>&1 ) &
( $PY -m keras_onebit train --model wrn_20_1 --dataset cifar10 --epochs 30 --float --threads 1 --verbose 2 \
      --out runs/wrn_20_1-cifar10-float > runs/wrn_20_1-cifar10-float.log 2>&1 ) &
wait
