#!/usr/bin/env bash
# Issue 27, next session, hands-off (after `make venv`: a fresh checkout has no .venv): resumes both
# 62-epoch bireal_20_2 runs from their committed state (runs/bireal_20_2-cifar10-{1bit,float}/): the
# fully binary run at full priority, its real-valued twin under `nice` (the binary run is the long one).
# Each writes a checkpoint every epoch; commit runs/bireal_20_2-cifar10-*/ before the session ends.
cd "$(dirname "$0")/.."
nohup runs/launch_bireal_20_2.sh > /dev/null 2>&1 &
nohup nice -n 10 runs/launch_bireal_20_2.sh --float > /dev/null 2>&1 &
