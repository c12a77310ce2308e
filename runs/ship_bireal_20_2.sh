#!/usr/bin/env bash
# Issue 27: ships the bireal_20_2 run as it stands after epoch $1 (a warm-restart cycle's end: 14, 30, 62 or 126,
# so the same computation as --epochs $1) while its run goes on (126: after the sixth cycle, EPOCHS=126). Waits for
# runs/bireal_20_2-cifar10-<kind>/state.json to record $1 epochs, copies the run's state to
# runs/bireal_20_2-cifar10-<kind>-e$1/ (runs/copy_at_cycle_end.sh, before the run's next epoch ends), and writes the
# hub entry from there (--resume finds all epochs done, rebuilds the bfloat16-trained model in float32 and
# evaluates it). $2 = --float ships the real-valued twin; each entry rewrites the other's one-bit vs float
# table, so ship both of the pair from the same epoch.
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
PY=.venv/bin/python
EPOCHS=${1:?usage: runs/ship_bireal_20_2.sh EPOCHS [--float]}
case $EPOCHS in 14) CYCLES="third warm-restart cycle 2+4+8" ;; 30) CYCLES="fourth warm-restart cycle 2+4+8+16" ;;
  62) CYCLES="fifth warm-restart cycle 2+4+8+16+32" ;; 126) CYCLES="sixth warm-restart cycle 2+4+8+16+32+64" ;;
  *) echo "$EPOCHS is not a cycle's end (14, 30, 62, 126)"; exit 2 ;; esac
KIND=1bit
[ "${2:-}" = "--float" ] && KIND=float
RUN=runs/bireal_20_2-cifar10-$KIND
OUT=$RUN-e$EPOCHS
reached() { $PY -c "import json,sys; sys.exit(json.load(open('$RUN/state.json'))['epochs_done'] < $EPOCHS)"; }
until reached; do sleep 30; done
runs/copy_at_cycle_end.sh $RUN $EPOCHS || exit 1
DECAY=$([ $KIND = float ] && echo 5e-4 || echo 0)
MAX_LR=$([ $KIND = float ] && echo 0.02 || echo 0.1)
SCRIPT="runs/ship_bireal_20_2.sh $EPOCHS" THREADS_USED="1 or 2"
# epoch 14 shipped first, by the name and on the one core its cards record
[ $EPOCHS = 14 ] && SCRIPT=runs/ship_bireal_20_2_e14.sh THREADS_USED=1
HOW="with --epochs 62 and stopped after epoch $EPOCHS by \`$SCRIPT\` (the end of the $CYCLES, so the same computation as --epochs $EPOCHS; the 62-epoch run goes on)"
LAUNCH_FLAG=$([ $KIND = float ] && echo " --float")  # the twin of a sixth cycle: its own launch command
[ $EPOCHS = 126 ] && HOW="for 62 epochs (five warm-restart cycles), then resumed with --epochs 126 through a sixth cycle (epochs 63-126, 2+4+8+16+32+64) by \`EPOCHS=126 runs/launch_bireal_20_2.sh$LAUNCH_FLAG\` and finalised by \`$SCRIPT\`"
[ $EPOCHS = 62 ] && HOW="for all 62 epochs (five warm-restart cycles, 2+4+8+16+32) and finalised by \`$SCRIPT\`"
NOTE="Fully binary: binary weights (sign, per-channel mean |W| scale, magnitude-aware gradient, latent weights clipped to +-1) and binary activations (sign, ApproxSign gradient) in its 18 3x3 convs; the stem conv, the shortcuts (average pool + repeated channels, no weights) and the dense layer are real. Trained by \`runs/launch_bireal_20_2.sh\` $HOW; epochs 1-6 with the cross-entropy, epochs 7-$EPOCHS with knowledge distillation (T = 4, w = 0.9) from the one-bit WRN-20-10 that McDonnell released (its probabilities computed once by \`runs/teacher_bireal_20_2.sh\`); no weight decay on the binary net; --dtype_policy mixed_bfloat16 (the shipped model rebuilt in float32); --threads $THREADS_USED, resumed across working sessions from the per-epoch checkpoint. Accuracy on the 1000 exact CIFAR-10 test images (exact_test_accuracy, standard error about 1.5 points) is the one to compare; the rest of the test set is a JPEG copy (see ../shared/data/README.md)."
[ $KIND = float ] && NOTE="The real-valued twin of bireal_20_2-cifar10-1bit: the same architecture with float weights and ReLU in place of sign, trained the same way by \`runs/launch_bireal_20_2.sh --float\` (weight decay 5e-4, max_lr 0.02) ${HOW//$SCRIPT/$SCRIPT --float}; epochs 7-$EPOCHS distilled from the same teacher. Accuracy on the 1000 exact CIFAR-10 test images is the one to compare."
$PY -m keras_onebit train --model bireal_20_2 --dataset cifar10 --epochs $EPOCHS --dtype_policy mixed_bfloat16 \
    --weight_decay $DECAY --max_lr $MAX_LR --teacher runs/bireal_20_2-cifar10-teacher.npy \
    --distill_from_epoch 6 --resume --out $OUT --hub pretrained --hub_notes "$NOTE" ${2:-} \
    > $OUT-finish.log 2>&1
tail -n 3 $OUT-finish.log
