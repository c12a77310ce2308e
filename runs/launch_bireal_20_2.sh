#!/usr/bin/env bash
# Issue 27: the fully binary bireal_20_2 (binary weights and activations in its 18 3x3 convs) on CIFAR-10
# for 62 epochs (five warm-restart cycles, 2+4+8+16+32), bfloat16 activations on a CPU with bfloat16
# instructions (AMX or AVX512_BF16; epochs 1-40 of the binary run and 1-33 of its twin), float32 without
# (bfloat16 took 7.5x float32's step time on an AVX2-only EPYC; a resumed checkpoint is rebuilt in the
# policy, keras_onebit.training.loop.in_run_policy; the shipped model is float32 either way), one thread so the other core stays free. Epochs 1-6: the cross-entropy; epochs 7-62:
# knowledge distillation (T = 4, w = 0.9) from the authors' WRN-20-10, whose probabilities
# runs/teacher_bireal_20_2.sh writes once (it runs beside the first epochs; the run waits for it at epoch 6).
# Resumable: every epoch writes runs/bireal_20_2-cifar10-1bit/checkpoint.keras + state.json; run this
# script again to continue. No weight decay on the binary net (Bi-Real's binary training); $1 = --float
# trains the real-valued twin (ReLU, weight decay 5e-4, the WRN recipe's) the same way into
# runs/bireal_20_2-cifar10-float/, but with max_lr 0.02: at 0.1 its first epoch diverged (loss 4.2 -> 15.9 in
# 16 steps on 2,000 images, in float32 and bfloat16 alike; 0.02 learns: 4.2 -> 3.25). THREADS=2 (environment) gives a run both cores.
# EPOCHS=126 (environment) continues a finished 62-epoch run through a sixth cycle (epochs 63-126, 32 -> 64
# epochs; the schedule's restart at epoch 62 sets the learning rate back to max_lr).
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
TEACHER=runs/bireal_20_2-cifar10-teacher.npy
KIND=1bit
[ "${1:-}" = "--float" ] && KIND=float
OUT=runs/bireal_20_2-cifar10-$KIND
DECAY=$([ $KIND = float ] && echo 5e-4 || echo 0)
MAX_LR=$([ $KIND = float ] && echo 0.02 || echo 0.1)
POLICY=$(grep -qw -e amx_bf16 -e avx512_bf16 /proc/cpuinfo && echo mixed_bfloat16 || echo float32)
TRAIN=".venv/bin/python -m keras_onebit train --model bireal_20_2 --dataset cifar10 --threads ${THREADS:-1}
    --dtype_policy $POLICY --weight_decay $DECAY --max_lr $MAX_LR --verbose 2 --resume --out $OUT ${1:-}"
[ -f $TEACHER ] || $TRAIN --epochs 6 >> $OUT.log 2>&1 || exit 1
until [ -f $TEACHER ]; do sleep 60; done
$TRAIN --epochs ${EPOCHS:-62} --teacher $TEACHER --distill_from_epoch 6 >> $OUT.log 2>&1
