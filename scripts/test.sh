#!/usr/bin/env bash
# Run the test suite (installs the [test] extras into .venv on first use). Extra arguments go to pytest:
#   scripts/test.sh                    everything (what CI runs)
#   scripts/test.sh --fast             the tests that start no Ray runtime and no subprocess (1-2 min here)
#   scripts/test.sh -m "not slow"      everything but the long end-to-end runs
#   scripts/test.sh --archive          adds the tests of benchmarks/archive/
# Tiers and markers: docs/testing.md.
SPIKESORT_EXTRAS="test${SPIKESORT_EXTRAS:+,$SPIKESORT_EXTRAS}"
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
exec python -m pytest "$@"
