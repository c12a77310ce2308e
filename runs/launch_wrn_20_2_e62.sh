#!/usr/bin/env bash
# Issue 15: WRN-20-2 one-bit on CIFAR-10 for 62 epochs (five warm-restart cycles, 2+4+8+16+32),
# bfloat16 activations (the shipped model is rebuilt in float32), one thread so the other core stays
# free. Epochs 1-30: the plain cross-entropy; epochs 31-62 (the last cycle): knowledge distillation from
# the authors' WRN-20-10 (runs/teacher_wrn_20_2_e62.sh writes its probabilities once; T = 4, w = 0.9).
# Resumable: every epoch writes runs/wrn_20_2-cifar10-1bit-e62/checkpoint.keras + state.json;
# run this script again to continue (--resume starts from the last finished epoch). $1 = --float
# trains the float twin the same way into runs/wrn_20_2-cifar10-float-e62/. THREADS=2 (environment)
# gives a run both cores once the other run is done (only float rounding may differ).
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
TEACHER=runs/wrn_20_2-cifar10-e62-teacher.npy
[ -f $TEACHER ] || runs/teacher_wrn_20_2_e62.sh || exit 1
KIND=1bit
[ "${1:-}" = "--float" ] && KIND=float
OUT=runs/wrn_20_2-cifar10-$KIND-e62
.venv/bin/python -m keras_onebit train --model wrn_20_2 --dataset cifar10 --epochs 62 --threads "${THREADS:-1}" \
    --dtype_policy mixed_bfloat16 --verbose 2 --resume --out $OUT \
    --teacher $TEACHER --distill_from_epoch 30 ${1:-} >> $OUT.log 2>&1
