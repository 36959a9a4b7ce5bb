"""Results a lab shares (issue 13, items 2 and 7): every file honours the umask, and two
exports of different datasets into one results tree at the same moment both land.

No Ray here: an export's files come from :func:`tuning.export.exporter.write_export` fed with
rerun rows made up from the labels (the reruns themselves are tests/test_export.py's
business), so the tests exercise the real planning, merging, locking and writing.

Run as a script (``python tests/test_results_sharing.py RESULTS DATA NAME READY_DIR``),
this file is the child process of the concurrency test: one export of dataset NAME.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS.parent) not in sys.path:  # as a script: the repository's packages
    sys.path.insert(0, str(TESTS.parent))

from tuning import atomic
from tuning.export import results_tree as tree  # noqa: E402
from tuning.data.readers import load_dataset  # noqa: E402
from tuning.search.run_record import RUN_RECORD, write_run_record  # noqa: E402
from tuning.export.exporter import BestTrial, write_export  # noqa: E402
from tuning.metrics import classification_metrics  # noqa: E402
from tuning.export.reruns import plan_jobs  # noqa: E402
from tuning.settings import TuneSettings  # noqa: E402

FOLDS, REPEATS = 2, 1
APPROACH, PREFIX = "Classic FFN PyTorch", "Classic_FFN"
SHARED = [f"{APPROACH}/{tree.FULL}/{PREFIX}_full_split_metrics_system.csv",
          f"{APPROACH}/{tree.FULL}/{PREFIX}_one_split_metrics_system.csv",
          f"{APPROACH}/{tree.BEST}/{PREFIX}_best_performers.csv"]


def fake_export(results: Path, data_dir: Path, name: str):
    """Export dataset ``name`` (ffn) into ``results`` with made-up rerun rows."""
    dataset = load_dataset(data_dir / f"{name}.csv", min_rows_per_class=FOLDS)
    settings = TuneSettings(folds=FOLDS, repeats=REPEATS, max_epochs=2)
    record = {"family": "ffn", "metric": "val_accuracy", "mode": "max", "command": "test",
              "settings": dataclasses.asdict(settings), "versions": {}}
    config = {"family": "ffn", "ffn_n_layers": 1, "ffn_units_l0": 8, "lr": 1e-3}
    best = BestTrial("t0", config, 2, 0.9, {}, 1, True)
    jobs = plan_jobs([dataset], seed=0, folds=FOLDS, repeats=REPEATS, val_fraction=0.15,
                     test_fraction=0.15, inner_val_fraction=0.15)
    rows = []
    for job in jobs:
        truth = dataset.y[job.test[0]]
        predicted = np.where(np.arange(len(truth)) % 4 == 0, 0, truth)  # some mistakes
        rows.append({"kind": job.kind, "dataset": name, "repeat": job.repeat, "fold": job.fold,
                     "seed": job.seed, "n_train": len(job.train[0]), "n_val": len(job.val[0]),
                     "n_test": len(truth), **classification_metrics(truth, predicted, dataset.n_classes),
                     "epochs": 2, "best_epoch": 2, "train_seconds": 0.1, "n_parameters": 10, "node_id": "n"})
    return write_export(results, record, f"/experiments/ffn-{name}", best, [dataset], rows, FOLDS, REPEATS)


@pytest.fixture
def umask():
    """``umask(mask)`` sets the process umask for the test; the old one comes back after."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------- shareable files


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_atomic_writes_honour_the_umask(tmp_path, umask, mask):
    umask(mask)
    atomic.write_text(tmp_path / "a" / "text.txt", "x")
    with atomic.atomic_path(tmp_path / "a" / "by_path.png") as tmp:
        tmp.write_bytes(b"png")
    atomic.write_all({tmp_path / "b" / "one.csv": b"1", tmp_path / "b" / "c" / "two.csv": b"2"})
    atomic.write_all({tmp_path / "b" / "one.csv": b"replaced"})  # replacing a file too
    assert atomic.current_umask() == mask
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 4
    assert {p.name: oct(mode(p)) for p in files} == {p.name: oct(0o666 & ~mask) for p in files}
    folders = [p for p in tmp_path.rglob("*") if p.is_dir()]
    assert {p.name: oct(mode(p)) for p in folders} == {p.name: oct(0o777 & ~mask) for p in folders}


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_run_record_and_every_results_file_honour_the_umask(tmp_path, tiny_dataset_dir, umask, mask):
    umask(mask)
    experiment = tmp_path / "ray_results" / "ffn-T2"
    experiment.mkdir(parents=True)
    write_run_record(experiment, "ffn", [load_dataset(tiny_dataset_dir / "T2.csv")], TuneSettings())
    assert oct(mode(experiment / RUN_RECORD)) == oct(0o666 & ~mask)

    results = tmp_path / "results"
    fake_export(results, tiny_dataset_dir, "T2")
    fake_export(results, tiny_dataset_dir, "T3")  # merges into existing files: replaced ones too
    files = sorted(p for p in results.rglob("*") if p.is_file())
    assert {p.suffix for p in files} >= {".csv", ".png", ".json", ".py", ".txt"}
    wrong = {str(p.relative_to(results)): oct(mode(p)) for p in files if mode(p) != 0o666 & ~mask}
    assert wrong == {}, f"expected {oct(0o666 & ~mask)}"
    assert all(mode(p) == 0o777 & ~mask for p in results.rglob("*") if p.is_dir())


# ---------------------------------------------------------------- concurrent exports


@pytest.mark.subprocess
def test_two_concurrent_exports_both_land(tmp_path, tiny_dataset_dir):
    """Two processes export T2 and T3 into one new tree at the same moment.

    Each child waits until both have loaded everything, then exports; its commit pauses
    until the other child has read the shared files too or a few seconds have passed. Without
    the lock both read the (empty) tree before either writes, and the second writer drops
    the first one's rows; with it the second child cannot read before the first has written.
    """
    results, ready = tmp_path / "results", tmp_path / "ready"
    ready.mkdir()
    env = {**os.environ, "PYTHONPATH": str(TESTS.parent)}
    children = [subprocess.Popen([sys.executable, __file__, str(results), str(tiny_dataset_dir), name, str(ready)],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for name in ("T2", "T3")]
    outputs = [child.communicate(timeout=600)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    for shared in SHARED:
        frame = pd.read_csv(results / shared, dtype=str)
        datasets = set(frame["dataset"]) - {tree.OVERALL}
        assert datasets == {"T2", "T3"}, f"{shared}: {sorted(datasets)}"
    system = pd.read_csv(results / SHARED[0]).set_index("dataset")
    assert system.loc[tree.OVERALL, "n_runs"] == FOLDS * REPEATS  # over both datasets' folds
    for name in ("T2", "T3"):
        assert (results / APPROACH / tree.INDIVIDUAL / f"{PREFIX}_full_split_metrics_{name}.csv").is_file()


def _child(results: str, data_dir: str, name: str, ready: str) -> None:
    """One exporter of the concurrency test (see there)."""
    ready_dir = Path(ready)

    def wait_for(names, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not all((ready_dir / n).exists() for n in names):
            time.sleep(0.02)

    real_commit = tree.commit

    def commit_after_the_other_has_read(plan):
        (ready_dir / f"read-{name}").touch()
        wait_for(["read-T2", "read-T3"], 5.0)
        real_commit(plan)

    tree.commit = commit_after_the_other_has_read  # write_export calls tree.commit
    (ready_dir / f"start-{name}").touch()
    wait_for(["start-T2", "start-T3"], 300.0)  # both imported and ready: start together
    fake_export(Path(results), Path(data_dir), name)


if __name__ == "__main__":
    _child(*sys.argv[1:5])
