#!/usr/bin/env bash
# Tune one model family on one dataset (or `all`), then export the results tree.
#   scripts/tune.sh cnn A12            the main job
#   scripts/tune.sh ffn A2 --smoke     a run of about a minute
#   scripts/tune.sh --help             every option
# The script as typed, so that the command printed to continue an interrupted run uses it too.
export SPIKESORT_TUNE_LAUNCHER="$0"
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
exec python -m tuning tune "$@"
