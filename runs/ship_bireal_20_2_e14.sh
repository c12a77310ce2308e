#!/usr/bin/env bash
# Issue 27: ships the fully binary bireal_20_2 as it stands after epoch 14 (the end of the third warm-restart
# cycle, lr at its minimum: the same computation as --epochs 14) while its 62-epoch run goes on. Waits for
# runs/bireal_20_2-cifar10-1bit/state.json to record 14 epochs, copies the run's state to
# runs/bireal_20_2-cifar10-1bit-e14/, and writes the hub entry from there (--resume finds all 14 epochs
# done, rebuilds the bfloat16-trained model in float32 and evaluates it). $1 = --float ships the twin.
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
PY=.venv/bin/python
KIND=1bit
[ "${1:-}" = "--float" ] && KIND=float
RUN=runs/bireal_20_2-cifar10-$KIND
OUT=$RUN-e14
done14() { $PY -c "import json,sys; sys.exit(json.load(open('$RUN/state.json'))['epochs_done'] < 14)"; }
until done14; do sleep 30; done
if [ ! -f $OUT/state.json ]; then
  mkdir -p $OUT && cp $RUN/{checkpoint.keras,state.json,log.csv,config.json} $OUT/
  $PY - "$OUT" <<'PY'
import json, pathlib, sys
state = pathlib.Path(sys.argv[1]) / "state.json"
done = json.loads(state.read_text())
assert done["epochs_done"] == 14, f"copied after epoch {done['epochs_done']}, not 14"
PY
fi
DECAY=$([ $KIND = float ] && echo 5e-4 || echo 0)
MAX_LR=$([ $KIND = float ] && echo 0.02 || echo 0.1)
NOTE="Fully binary: binary weights (sign, per-channel mean |W| scale, magnitude-aware gradient, latent weights clipped to +-1) and binary activations (sign, ApproxSign gradient) in its 18 3x3 convs; the stem conv, the shortcuts (average pool + repeated channels, no weights) and the dense layer are real. Trained by \`runs/launch_bireal_20_2.sh\` with --epochs 62 and stopped after epoch 14 by \`runs/ship_bireal_20_2_e14.sh\` (the end of the third warm-restart cycle 2+4+8, so the same computation as --epochs 14; the 62-epoch run goes on); epochs 1-6 with the cross-entropy, epochs 7-14 with knowledge distillation (T = 4, w = 0.9) from the one-bit WRN-20-10 that McDonnell released (its probabilities computed once by \`runs/teacher_bireal_20_2.sh\`); no weight decay on the binary net; --dtype_policy mixed_bfloat16 (the shipped model rebuilt in float32); --threads 1, resumed across working sessions from the per-epoch checkpoint. Accuracy on the 1000 exact CIFAR-10 test images (exact_test_accuracy, standard error about 1.5 points) is the one to compare; the rest of the test set is a JPEG copy (see ../shared/data/README.md)."
[ $KIND = float ] && NOTE="The real-valued twin of bireal_20_2-cifar10-1bit: the same architecture with float weights and ReLU in place of sign, trained the same way by \`runs/launch_bireal_20_2.sh --float\` (weight decay 5e-4, max_lr 0.02) and stopped after epoch 14 by \`runs/ship_bireal_20_2_e14.sh --float\`; epochs 7-14 distilled from the same teacher. Accuracy on the 1000 exact CIFAR-10 test images is the one to compare."
$PY -m keras_onebit train --model bireal_20_2 --dataset cifar10 --epochs 14 --dtype_policy mixed_bfloat16 \
    --weight_decay $DECAY --max_lr $MAX_LR --teacher runs/bireal_20_2-cifar10-teacher.npy \
    --distill_from_epoch 6 --resume --out $OUT --hub pretrained --hub_notes "$NOTE" ${1:-} \
    > $OUT-finish.log 2>&1
tail -n 3 $OUT-finish.log
