#!/usr/bin/env bash
# The whole study: every family on every dataset, exports, comparison, learning curves, results/report.md.
#   scripts/study.sh                     the default study (hours; continues where an interrupted one stopped)
#   scripts/study.sh --time-budget 6     the same within about six hours
#   scripts/study.sh --smoke             a quick end-to-end run on small copies of the data
#   scripts/study.sh --help              every option
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
exec python -m tuning study "$@"
