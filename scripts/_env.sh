# Sourced by tune.sh and test.sh: create .venv and install the project on first use,
# and again only when setup.cfg / pyproject.toml change (a stamp holds their hash).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.spikesort-tune-installed"
PYTHON_BIN="${PYTHON:-python3}"

want="$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "spikesort-tune: setting up $VENV (first run takes about 90 s)..." >&2
  [ -x "$VENV/bin/python" ] || "$PYTHON_BIN" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[test]" >&2
  echo "$want" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
export RAY_USAGE_STATS_ENABLED=0
cd "$ROOT"
