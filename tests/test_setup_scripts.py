"""scripts/_env.sh: what each script installs, and when it installs again.

``_env.sh`` runs in bash on a copy of the repository whose ``.venv/bin/python`` is a small
script that writes down each ``pip install`` it is asked for (the real set-up takes minutes
and the network; docs/testing.md gives the measured fresh-clone run). Checked: tune.sh, study.sh
and predict.sh ask for the runtime dependencies only, test.sh adds ``[test]``; the stamp makes
tune.sh after test.sh install nothing and test.sh after tune.sh add the extras; a change to
setup.cfg installs again.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.subprocess

RECORDING_PYTHON = """#!/usr/bin/env bash
if [ "$1 $2 $3" = "-m pip install" ]; then echo "${@: -1}" >> "$(dirname "$0")/../installs.log"; fi
"""


@pytest.fixture
def repo(tmp_path) -> Path:
    """A copy of the scripts, setup.cfg and pyproject.toml, with a venv that records installs."""
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "scripts", copy / "scripts")
    for name in ("setup.cfg", "pyproject.toml"):
        shutil.copy(ROOT / name, copy / name)
    python = copy / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(RECORDING_PYTHON)
    python.chmod(0o755)
    return copy


def set_up(repo: Path, script: str) -> list[str]:
    """Source _env.sh as ``script`` does (test.sh sets SPIKESORT_EXTRAS first); return the
    project installs it asked for (the pip upgrade left out)."""
    log = repo / ".venv" / "installs.log"
    log.unlink(missing_ok=True)
    prologue = 'SPIKESORT_EXTRAS="test${SPIKESORT_EXTRAS:+,$SPIKESORT_EXTRAS}"; ' if script == "test.sh" else ""
    subprocess.run(["bash", "-c", f'{prologue}source "{repo}/scripts/_env.sh"'], check=True, timeout=60,
                   env={"PATH": "/usr/bin:/bin", "HOME": str(repo)})
    installs = log.read_text().split() if log.exists() else []
    return [i.replace(str(repo), "REPO") for i in installs if i != "pip"]


def test_test_sh_sets_its_extras_the_way_the_test_above_does():
    assert 'SPIKESORT_EXTRAS="test${SPIKESORT_EXTRAS:+,$SPIKESORT_EXTRAS}"' in (ROOT / "scripts" / "test.sh").read_text()
    for script in ("tune.sh", "study.sh", "predict.sh"):
        text = (ROOT / "scripts" / script).read_text()
        assert "_env.sh" in text and "SPIKESORT_EXTRAS" not in text, script


def test_runtime_scripts_install_without_the_test_extras_and_the_stamp_records_extras(repo):
    assert set_up(repo, "tune.sh") == ["REPO"]  # pip install -e REPO: the runtime only
    assert set_up(repo, "tune.sh") == []
    assert set_up(repo, "test.sh") == ["REPO[test]"]
    assert set_up(repo, "tune.sh") == []  # what test.sh installed is enough
    assert set_up(repo, "test.sh") == []
    assert (repo / ".venv" / ".spikesort-tune-installed").read_text().splitlines()[1] == "test"


def test_a_changed_setup_cfg_installs_again_with_what_the_caller_needs(repo):
    assert set_up(repo, "test.sh") == ["REPO[test]"]
    with (repo / "setup.cfg").open("a") as cfg:
        cfg.write("\n# a changed pin\n")
    assert set_up(repo, "tune.sh") == ["REPO"]
    assert set_up(repo, "test.sh") == ["REPO[test]"]


def test_a_one_line_stamp_from_the_earlier_set_up_counts_as_test_extras(repo):
    """The earlier _env.sh always installed [test] and wrote only the hash."""
    set_up(repo, "tune.sh")
    stamp = repo / ".venv" / ".spikesort-tune-installed"
    stamp.write_text(stamp.read_text().splitlines()[0] + "\n")
    assert set_up(repo, "test.sh") == []
    assert set_up(repo, "tune.sh") == []


def test_more_extras_on_request(repo):
    assert set_up(repo, "tune.sh") == ["REPO"]
    log = repo / ".venv" / "installs.log"
    subprocess.run(["bash", "-c", f'SPIKESORT_EXTRAS=bohb; source "{repo}/scripts/_env.sh"'], check=True,
                   timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(repo)})
    assert log.read_text().split()[-1] == f"{repo}[bohb]"
    assert set_up(repo, "test.sh") == ["REPO[bohb,test]"]  # keeps what the venv has while setup.cfg holds


def test_gpu_check_on_a_machine_without_cuda_says_so_and_exits_1():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the check would really run")
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == "gpu_check: torch sees no CUDA device here; nothing to check"
