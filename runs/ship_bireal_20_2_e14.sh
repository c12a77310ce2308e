#!/usr/bin/env bash
# Issue 27: shipped bireal_20_2-cifar10-1bit (and, with --float, its ReLU twin) after epoch 14, the end of the
# third warm-restart cycle; the entries' cards name this command. runs/ship_bireal_20_2.sh does the work.
exec "$(dirname "$0")/ship_bireal_20_2.sh" 14 "$@"
