#!/usr/bin/env bash
# Issue 27's relay, each session, hands-off (after `make venv`: a fresh checkout has no .venv). Brings each
# run (the fully binary one first, then its real-valued twin) that is short of epoch 30 (the end of the fourth
# warm-restart cycle) there on both cores, copies its state after epoch 30 to
# runs/bireal_20_2-cifar10-<1bit|float>-e30/ (shipped with `runs/ship_bireal_20_2.sh 30 [--float]`), then
# resumes both runs toward epoch 62, one core each (the twin under `nice`); with both past 30 only that last
# step runs. Ship the pair at 62 with
# `runs/ship_bireal_20_2.sh 62 --float` and `runs/ship_bireal_20_2.sh 62`. Each run writes a checkpoint every
# epoch; commit runs/bireal_20_2-cifar10-*/ by path before the session ends (docs/MAINTAINING.md).
cd "$(dirname "$0")/.."
PY=.venv/bin/python
run() { echo runs/bireal_20_2-cifar10-$1; }
done_epochs() { $PY -c "import json; print(json.load(open('$(run $1)/state.json'))['epochs_done'])"; }
to_30() {  # the run (1bit or float) on both cores until it has finished epoch 30, then stopped and copied
  if [ "$(done_epochs $1)" -lt 30 ]; then
    THREADS=2 runs/launch_bireal_20_2.sh $([ $1 = float ] && echo --float) &
    local launcher=$!
    until [ "$(done_epochs $1)" -ge 30 ]; do sleep 20; done
    sleep 20  # the CSV logger writes its row after the checkpoint and state.json
    pkill -P $launcher  # its training process: by parent, never by a pattern another run could match
    wait $launcher
  fi
  [ "$(done_epochs $1)" = 30 ] && runs/copy_at_cycle_end.sh $(run $1) 30
}
relay() {
  to_30 1bit
  to_30 float
  runs/launch_bireal_20_2.sh &
  nice -n 10 runs/launch_bireal_20_2.sh --float &
  wait
}
relay > /dev/null 2>&1 &
