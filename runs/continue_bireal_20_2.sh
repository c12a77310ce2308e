#!/usr/bin/env bash
# Issue 27's relay, each session, hands-off (after `make venv`: a fresh checkout has no .venv). Both runs finished
# five warm-restart cycles (62 epochs) and were shipped from there (runs/*-e62/; the relay that got them there,
# through epoch 30 on both cores and then one core each, is this file in git history before the sixth cycle).
# Now it takes the fully binary run through a sixth cycle, epochs 63-126 (`EPOCHS=126 THREADS=2
# runs/launch_bireal_20_2.sh`, both cores), and does nothing once state.json records 126 epochs: it did, and was
# shipped with `runs/ship_bireal_20_2.sh 126` on 2026-12-08 (runs/bireal_20_2-cifar10-1bit-e126/). The run writes
# a checkpoint every epoch; commit runs/bireal_20_2-cifar10-1bit/ by path before the session ends
# (docs/MAINTAINING.md).
cd "$(dirname "$0")/.."
DONE=$(.venv/bin/python -c "import json; print(json.load(open('runs/bireal_20_2-cifar10-1bit/state.json'))['epochs_done'])")
[ "$DONE" -ge 126 ] && exit 0
pgrep -f -- "--out runs/bireal_20_2-cifar10-1bit " > /dev/null && { echo "the binary run is already training"; exit 0; }
EPOCHS=126 THREADS=2 nohup runs/launch_bireal_20_2.sh > /dev/null 2>&1 &
