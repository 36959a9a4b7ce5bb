#!/usr/bin/env bash
# Tune one model family on one dataset (or `all`), then export the results tree.
#   scripts/tune.sh cnn A12            the main job
#   scripts/tune.sh ffn A2 --smoke     a run of about a minute
#   scripts/tune.sh --help             every option
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
exec python -m tuning tune "$@"
