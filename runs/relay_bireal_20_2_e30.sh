#!/usr/bin/env bash
# Issue 27, one session's relay: once the fully binary run has finished epoch 30 (the end of the fourth
# warm-restart cycle), copies its state to runs/bireal_20_2-cifar10-1bit-e30/ (what runs/ship_bireal_20_2.sh 30
# ships), stops that run and gives both cores to the real-valued twin (THREADS=2), which is behind (epoch 14)
# and must reach 30 too before the pair ships. The binary run resumes from its epoch-30 state later
# (runs/continue_bireal_20_2.sh).
cd "$(dirname "$0")/.."
PY=.venv/bin/python
RUN=runs/bireal_20_2-cifar10-1bit
OUT=$RUN-e30
done_epochs() { $PY -c "import json; print(json.load(open('$RUN/state.json'))['epochs_done'])"; }
until [ "$(done_epochs)" -ge 30 ]; do sleep 20; done
sleep 20  # the CSV logger writes its row after the checkpoint and state.json
pkill -f "keras_onebit train --model bireal_20_2 .*--out $RUN( |$)"
sleep 5
if [ ! -f $OUT/state.json ]; then
  mkdir -p $OUT && cp $RUN/{checkpoint.keras,state.json,log.csv,config.json} $OUT/
fi
[ "$(done_epochs)" = 30 ] || echo "warning: $RUN is at epoch $(done_epochs), not 30" >&2
THREADS=2 nohup runs/launch_bireal_20_2.sh --float > /dev/null 2>&1 &
