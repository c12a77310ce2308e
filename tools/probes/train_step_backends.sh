#!/usr/bin/env bash
# docs/MAINTAINING.md (2026-12-07, AVX2 EPYC, the twin paused, the binary run on the other core): the relay's
# `train` resumed from a copy of the fully binary run's checkpoint on one core, per backend, for 240 s; read
# the progress bar's s/step (TensorFlow 5.3, PyTorch 5.9). Usage: tools/probes/train_step_backends.sh tensorflow|torch
set -e
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
cp runs/bireal_20_2-cifar10-1bit/{checkpoint.keras,state.json,log.csv,config.json} "$out"/
OMP_NUM_THREADS=1 KERAS_BACKEND=$1 timeout 240 taskset -c 1 .venv/bin/python -m keras_onebit train \
  --model bireal_20_2 --dataset cifar10 --threads 1 --dtype_policy float32 --weight_decay 0 --max_lr 0.1 \
  --verbose 1 --resume --out "$out" --epochs 62 --teacher runs/bireal_20_2-cifar10-teacher.npy \
  --distill_from_epoch 6 2>&1 | tr '\r' '\n' | grep "s/step" | tail -n 1 || true
rm -rf "$out"
