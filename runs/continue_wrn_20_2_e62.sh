#!/usr/bin/env bash
# Issue 15, hands-off: resumes both 62-epoch WRN-20-2 runs (one thread each); when the one-bit run is
# done, restarts the float twin on both cores right after its next finished epoch (state.json and its
# log.csv row written: nothing lost); when both are done, runs/finish_wrn_20_2_e62.sh writes the hub
# entries and the export report. Start it with: nohup runs/continue_wrn_20_2_e62.sh > runs/continue.log 2>&1 &
cd "$(dirname "$0")/.."
ONE=runs/wrn_20_2-cifar10-1bit-e62
FLT=runs/wrn_20_2-cifar10-float-e62
done_epochs() { .venv/bin/python -c "import json; print(json.load(open('$1/state.json'))['epochs_done'])"; }
log_rows() { echo $(( $(wc -l < "$1/log.csv") - 1 )); }
runs/launch_wrn_20_2_e62.sh & ONE_PID=$!
runs/launch_wrn_20_2_e62.sh --float & FLT_PID=$!
wait $ONE_PID
echo "$(date -u +%T) one-bit run done: $(done_epochs $ONE) epochs"
if kill -0 $FLT_PID 2>/dev/null; then
  n=$(done_epochs $FLT)
  until [ "$(done_epochs $FLT)" != "$n" ] && [ "$(log_rows $FLT)" = "$(done_epochs $FLT)" ]; do
    kill -0 $FLT_PID 2>/dev/null || break
    sleep 5
  done
  pkill -f -- "--out $FLT " ; wait $FLT_PID
  echo "$(date -u +%T) float twin at $(done_epochs $FLT) epochs: continuing with 2 threads"
  THREADS=2 runs/launch_wrn_20_2_e62.sh --float
fi
[ "$(done_epochs $ONE)" = 62 ] && [ "$(done_epochs $FLT)" = 62 ] || { echo "runs not done"; exit 1; }
echo "$(date -u +%T) both runs done: writing the hub entries"
runs/finish_wrn_20_2_e62.sh
