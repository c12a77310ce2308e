#!/usr/bin/env bash
# Keeps a run's state after epoch $2 (a warm-restart cycle's end) for shipping while the run goes on: copies
# $1/{checkpoint.keras,state.json,log.csv,config.json} to $1-e$2/ unless that copy exists. The copy is made in a
# temporary folder and renamed only if it records exactly $2 epochs (take it before the run's next epoch ends),
# so a wrong or half-made copy is never left behind. Used by continue_bireal_20_2.sh and ship_bireal_20_2.sh.
# From the repository root: runs/copy_at_cycle_end.sh runs/<run> EPOCHS
RUN=${1:?usage: runs/copy_at_cycle_end.sh RUN_FOLDER EPOCHS}
EPOCHS=${2:?usage: runs/copy_at_cycle_end.sh RUN_FOLDER EPOCHS}
OUT=$RUN-e$EPOCHS
TMP=$OUT.tmp
[ -f $OUT/state.json ] && exit 0
rm -rf $TMP && mkdir -p $TMP || exit 1
cp $RUN/{checkpoint.keras,state.json,log.csv,config.json} $TMP/ || { rm -rf $TMP; exit 1; }
DONE=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['epochs_done'])" $TMP/state.json)
if [ "$DONE" != "$EPOCHS" ]; then
  rm -rf $TMP
  echo "$RUN has $DONE epochs done, not $EPOCHS: no copy made" >&2
  exit 1
fi
rm -rf $OUT && mv $TMP $OUT
