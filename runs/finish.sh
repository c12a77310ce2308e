#!/usr/bin/env bash
# Stops each CIFAR-10 run after epoch 14 (the end of the third SGDR cycle, lr at its minimum:
# the same computation as --epochs 14), writes its hub entry, then trains the MNIST model.
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
PY=.venv/bin/python
done14() { [ -f "runs/$1/state.json" ] && $PY -c "import json,sys; sys.exit(json.load(open('runs/$1/state.json'))['epochs_done'] < 14)"; }
finish() {  # run-id pid extra-flags...
  local id=$1 pid=$2; shift 2
  until done14 "$id"; do sleep 15; done
  kill "$pid"; sleep 5
  echo "$(date -u +%T) $id: stopped after epoch 14; writing hub entry"
  $PY -m keras_onebit train --model wrn_20_1 --dataset cifar10 --epochs 14 --out "runs/$id" --resume \
      --hub pretrained "$@" --hub_notes "Trained by \`runs/launch.sh\` with --epochs 30 --threads 1 and stopped after epoch 14 by \`runs/finish.sh\` (the end of the third warm-restart cycle, so the same computation as --epochs 14); the command below finalised it from the epoch-14 checkpoint. Accuracy on the 1000 exact CIFAR-10 test images (exact_test_accuracy) is the one to compare; the rest of the test set is a JPEG copy (see ../shared/data/README.md)." \
      > "runs/$id-finish.log" 2>&1
}
finish wrn_20_1-cifar10-1bit 3993 --hub_default &
finish wrn_20_1-cifar10-float 3992 --float &
wait
echo "$(date -u +%T) training MNIST"
$PY -m keras_onebit train --model wrn_20_1 --dataset mnist --epochs 6 --augmentation none --verbose 2 \
    --out runs/wrn_20_1-mnist-1bit --hub pretrained > runs/wrn_20_1-mnist-1bit.log 2>&1
echo "$(date -u +%T) all done"
