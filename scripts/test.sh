#!/usr/bin/env bash
# Run the test suite. Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow".
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
exec python -m pytest "$@"
