"""An experiment folder written before tuning/ was split into subpackages still exports
and resumes with today's code.

Tune pickles class paths into an experiment folder (``tuner.pkl``: the console reporter,
the searcher and the scheduler), so a module that moves must leave a thin shim where a
stored folder expects it. The fixture (``tests/fixtures/legacy-experiment``, made by the
script beside it with the code of 810e3a8) is an ffn search on the tiny T2 set interrupted
with Ctrl-C while two of its four trials were half-way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "legacy-experiment"
MADE_AT = "/tmp/fx/out"  # where the fixture was written: the root of the paths in its run record
APPROACH = "Classic FFN PyTorch"

pytestmark = pytest.mark.cluster  # subprocesses, each with a local Ray runtime of its own


def copy_fixture(root: Path) -> Path:
    """The fixture under ``root``, its run record pointing at the copy; the experiment folder."""
    shutil.copytree(FIXTURE / "data", root / "data")
    shutil.copytree(FIXTURE / "ray_results", root / "ray_results")
    (experiment,) = (root / "ray_results").iterdir()
    record = experiment / "spikesort_run.json"
    record.write_text(record.read_text().replace(MADE_AT, str(root)))
    return experiment


def run_cli(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    ray_tmp = tempfile.mkdtemp(prefix="sst-", dir="/tmp")  # short: Ray's socket paths
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_TMPDIR=ray_tmp, RAY_USAGE_STATS_ENABLED="0")
    try:
        return subprocess.run([sys.executable, "-m", "tuning", *args], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def trial_epochs(experiment: Path) -> dict[str, list[int]]:
    return {folder.name: [json.loads(line)["epoch"] for line in (folder / "result.json").read_text().splitlines()
                          if line]
            for folder in sorted(experiment.glob("trial_*"))}


def test_the_fixture_holds_the_old_class_paths():
    """Guards the fixture itself: if these names were not in it, the test below proved nothing."""
    (experiment,) = (FIXTURE / "ray_results").iterdir()
    pickled = (experiment / "tuner.pkl").read_bytes()
    for name in (b"tuning.console", b"tuning.searchers"):
        assert name in pickled, name


def test_an_experiment_written_before_the_move_resumes_to_the_end(tmp_path):
    experiment = copy_fixture(tmp_path)
    before = trial_epochs(experiment)
    assert sorted(len(e) for e in before.values()) == [2, 2], before  # two trials half-way
    results = tmp_path / "results"
    done = run_cli(["tune", "ffn", "T2", "--samples", "4", "--max-epochs", "4", "--grace-period", "4",
                    "--folds", "2", "--repeats", "1", "--num-cpus", "2", "--data-dir", str(tmp_path / "data"),
                    "--storage", str(tmp_path / "ray_results"), "--results-dir", str(results), "--resume"])
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert f"Resuming {experiment}" in done.stdout
    after = trial_epochs(experiment)
    assert len(after) == 4 and all(epochs == [1, 2, 3, 4] for epochs in after.values()), after
    best = pd.read_csv(results / APPROACH / "Best Performance Results" / "Classic_FFN_best_performers.csv")
    assert best["dataset"].tolist() == ["T2"] and bool(best["search_complete"].iloc[0])


def test_an_experiment_written_before_the_move_exports(tmp_path):
    experiment = copy_fixture(tmp_path)
    results = tmp_path / "results"
    done = run_cli(["export", str(experiment), "--results-dir", str(results), "--num-cpus", "2"])
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "interrupted search; exporting its best trial so far" in done.stderr
    rows = pd.read_csv(results / APPROACH / "Individual Dataset Results" / "Classic_FFN_full_split_metrics_T2.csv")
    assert len(rows) == 2  # 2 folds x 1 repeat, as the search was started with
    assert (results / APPROACH / "Model" / "T2" / "bundle.json").is_file()
