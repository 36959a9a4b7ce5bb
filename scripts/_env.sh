# Sourced by tune.sh, study.sh and predict.sh (the runtime dependencies only) and by test.sh
# (which sets SPIKESORT_EXTRAS=test first): create .venv and install the project on first use,
# and again only when setup.cfg / pyproject.toml change or the caller needs an extra the venv
# lacks. The stamp holds the two files' hash and the extras installed with it, so tune.sh
# after test.sh installs nothing and test.sh after tune.sh adds the test extras.
# SPIKESORT_EXTRAS: a comma list of setup.cfg extras to install as well (e.g. bohb).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.spikesort-tune-installed"   # line 1: hash; line 2: extras (comma list)
PYTHON_BIN="${PYTHON:-python3}"

want="$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
have="" have_extras=""
if [ -f "$STAMP" ]; then
  # A one-line stamp is the earlier set-up's, which always installed [test].
  { read -r have || true; read -r have_extras || have_extras="test"; } < "$STAMP"
fi
needed=""  # the extras to install: the caller's, plus the venv's own while the hash holds
[ "$have" = "$want" ] && needed="$have_extras"
missing=0
extras="${SPIKESORT_EXTRAS:-}"
for extra in ${extras//,/ }; do
  case ",$needed," in
    *",$extra,"*) ;;
    *) needed="${needed:+$needed,}$extra"; missing=1 ;;
  esac
done
if [ ! -x "$VENV/bin/python" ] || [ "$have" != "$want" ] || [ "$missing" = 1 ]; then
  echo "spikesort-tune: setting up $VENV${needed:+ with [$needed]} (the first run takes a few minutes)..." >&2
  [ -x "$VENV/bin/python" ] || "$PYTHON_BIN" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT${needed:+[$needed]}" >&2
  printf '%s\n%s\n' "$want" "$needed" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
export RAY_USAGE_STATS_ENABLED=0
cd "$ROOT"
