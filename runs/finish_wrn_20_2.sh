#!/usr/bin/env bash
# Writes the hub entries of the two WRN-20-2 runs of runs/launch_wrn_20_2.sh from their final
# (epoch-14) checkpoints: --resume finds all epochs done, rebuilds the bfloat16-trained model in
# float32 and evaluates it. Pass --hub_default as $1 to make the one-bit model the hub default.
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
PY=.venv/bin/python
NOTE='Trained by `runs/launch_wrn_20_2.sh` (--epochs 14: three warm-restart cycles of 2+4+8 epochs; --dtype_policy mixed_bfloat16: bfloat16 activations with float32 latent weights and BN statistics, the shipped model rebuilt in float32; --threads 1, the one-bit and float runs side by side on the 2 cores). `runs/finish_wrn_20_2.sh` ran the command below, which wrote this entry from the epoch-14 checkpoint (--resume finds all epochs done and only evaluates). Accuracy on the 1000 exact CIFAR-10 test images (exact_test_accuracy) is the one to compare; the rest of the test set is a JPEG copy (see ../shared/data/README.md).'
COMMON="--model wrn_20_2 --dataset cifar10 --epochs 14 --dtype_policy mixed_bfloat16 --resume"
$PY -m keras_onebit train $COMMON --out runs/wrn_20_2-cifar10-1bit --hub pretrained $1 \
    --hub_notes "$NOTE" > runs/wrn_20_2-cifar10-1bit-finish.log 2>&1
$PY -m keras_onebit train $COMMON --float --out runs/wrn_20_2-cifar10-float --hub pretrained \
    --hub_notes "$NOTE" > runs/wrn_20_2-cifar10-float-finish.log 2>&1
tail -n 3 runs/wrn_20_2-cifar10-*-finish.log
