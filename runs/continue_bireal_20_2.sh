#!/usr/bin/env bash
# Issue 27's relay, each session, hands-off (after `make venv`: a fresh checkout has no .venv). Brings each
# run (the fully binary one first, then its real-valued twin) that is short of epoch 30 (the end of the fourth
# warm-restart cycle) there on both cores, copies its state after epoch 30 to
# runs/bireal_20_2-cifar10-<1bit|float>-e30/ (shipped with `runs/ship_bireal_20_2.sh 30 [--float]`), then
# resumes both runs toward epoch 62, one core each (the twin under `nice`), and when the first reaches 62 gives
# the other both cores (restarted from its last checkpoint); with both past 30 only these last steps run, a run
# already at 62 is left alone. Ship the pair at 62 with
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
launch() {  # kind threads: resumes the run toward epoch 62 in the background (the twin under nice)
  THREADS=$2 nice -n $([ $1 = float ] && echo 10 || echo 0) runs/launch_bireal_20_2.sh \
    $([ $1 = float ] && echo --float) &
}
relay() {
  to_30 1bit
  to_30 float
  local left=() kind pid
  for kind in 1bit float; do [ "$(done_epochs $kind)" -lt 62 ] && left+=($kind); done
  if [ ${#left[@]} = 1 ]; then launch ${left[0]} 2; wait; fi
  [ ${#left[@]} = 2 ] || return
  launch 1bit 1; local binary=$!
  launch float 1; local twin=$!
  wait -n $binary $twin  # the first to reach 62; the other then gets both cores
  for pid in $binary $twin; do
    kill -0 $pid 2>/dev/null || continue
    pkill -P $pid  # its training process: by parent, never by a pattern another run could match
    wait $pid
    launch $([ $pid = $binary ] && echo 1bit || echo float) 2
    wait
  done
}
relay > /dev/null 2>&1 &
