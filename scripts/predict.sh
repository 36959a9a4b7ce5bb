#!/usr/bin/env bash
# Sort the spikes of a waveform CSV with a model bundle written by the export.
#   scripts/predict.sh "results/Classic CNN PyTorch/Model/A12" data/A12.csv --out predictions.csv
#   scripts/predict.sh MODEL_DIR new_spikes.csv --out predictions.csv --min-confidence 0.8
#   scripts/predict.sh --help          every option
# Relative paths are taken from the folder you run it in.
here="$PWD"
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
cd "$here"
exec python -m tuning predict "$@"
