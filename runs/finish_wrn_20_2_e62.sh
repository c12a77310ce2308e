#!/usr/bin/env bash
# Issue 15: once both 62-epoch runs of runs/launch_wrn_20_2_e62.sh are done (state.json epochs_done 62),
# writes their hub entries from the final checkpoints (--resume finds all epochs done, rebuilds the
# bfloat16-trained model in float32 and evaluates it); the one-bit model becomes the hub default. Then
# remove the runs' committed checkpoint state (git rm -r runs/wrn_20_2-cifar10-*-e62 and the teacher file).
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
PY=.venv/bin/python
NOTE='Trained by `runs/launch_wrn_20_2_e62.sh` (62 epochs: five warm-restart cycles 2+4+8+16+32; epochs 1-30 with the cross-entropy, epochs 31-62 with knowledge distillation (T = 4, w = 0.9) from the one-bit WRN-20-10 that McDonnell released, whose probabilities `runs/teacher_wrn_20_2_e62.sh` computed once with its int8 export: `python -m keras_onebit teacher --model ../shared/reference/mcdonnell-wrn-20-10/CIFAR10_allparams.mat --dataset cifar10 --format int8 --threads 1 --out runs/wrn_20_2-cifar10-e62-teacher.npy`; --dtype_policy mixed_bfloat16, the shipped model rebuilt in float32; --threads 1 while both runs shared the 2 cores, 2 for the run left alone (threads change only float rounding); resumed across working sessions from the per-epoch checkpoint). `runs/finish_wrn_20_2_e62.sh` wrote this entry. Accuracy on the 1000 exact CIFAR-10 test images (exact_test_accuracy, standard error about 1 point) is the one to compare; the rest of the test set is a JPEG copy (see ../shared/data/README.md).'
COMMON="--model wrn_20_2 --dataset cifar10 --epochs 62 --dtype_policy mixed_bfloat16 --resume \
    --teacher runs/wrn_20_2-cifar10-e62-teacher.npy --distill_from_epoch 30"
$PY -m keras_onebit train $COMMON --out runs/wrn_20_2-cifar10-1bit-e62 --hub pretrained --hub_default \
    --hub_notes "$NOTE" > runs/wrn_20_2-cifar10-1bit-e62-finish.log 2>&1
$PY -m keras_onebit train $COMMON --float --out runs/wrn_20_2-cifar10-float-e62 --hub pretrained \
    --hub_notes "$NOTE" > runs/wrn_20_2-cifar10-float-e62-finish.log 2>&1
tail -n 3 runs/wrn_20_2-cifar10-*-e62-finish.log
# the new default's export report (issue 15 asks for it): export/wrn_20_2-cifar10-1bit/report.md
make export-tflite > runs/wrn_20_2-cifar10-e62-export.log 2>&1
tail -n 9 runs/wrn_20_2-cifar10-e62-export.log
