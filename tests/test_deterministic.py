"""``--deterministic`` with real processes: the same command twice gives the same trials in
the same order, the same stopping decisions, the same chosen configuration and the same
exported numbers; a run interrupted with Ctrl-C and resumed ends where they do. The Optuna
study of the resumed run still has every ASHA-stopped trial PRUNED, every full one COMPLETE.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pandas as pd
import pytest

from test_resume import held_and_saved, runs, wait_until  # noqa: F401 (runs: a fixture)
from test_searchers import check_study_matches_trials
from tuning.search import searchers
from tuning.export.results_tree import TEXT_COLUMNS

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

SAMPLES, EPOCHS = 6, 4
# Loss as the objective: the tiny data are separable, and ASHA never stops a trial that ties.
TUNE_ARGS = ["ffn", "T2", "--samples", str(SAMPLES), "--max-epochs", str(EPOCHS), "--grace-period", "1",
             "--metric", "loss", "--deterministic", "--folds", "2", "--repeats", "1", "--num-cpus", "2"]
APPROACH = "Classic FFN PyTorch"
# What legitimately differs between two runs: wall times, Ray ids, folder names.
VARYING = ("train_seconds", "node_id", "experiment", "trial_id")  # and their _mean, _std, ... columns


def search_trace(storage: Path) -> list[tuple]:
    """(configuration, epochs trained, Optuna state) of every trial, in the order suggested."""
    (exp,) = [p for p in storage.glob("ffn-T2-*") if p.is_dir()]
    study, numbers = searchers.load_study(exp)
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    trace = []
    for trial_id, number in sorted(numbers.items(), key=lambda item: item[1]):
        params = json.loads((exp / f"trial_{trial_id}" / "params.json").read_text())
        rows = (exp / f"trial_{trial_id}" / "result.json").read_text().splitlines()
        trace.append((json.dumps(params, sort_keys=True), len([r for r in rows if r.strip()]),
                      by_number[number].state.name))
    return trace


def exported_tables(results: Path) -> dict[str, pd.DataFrame]:
    tables = {}
    for path in sorted((results / APPROACH).rglob("*.csv")):
        if "Run Config" in path.parts:
            continue  # fold assignment only; the settings files hold paths and dates
        frame = pd.read_csv(path, dtype=TEXT_COLUMNS)
        tables[str(path.relative_to(results))] = frame.drop(columns=[c for c in frame if c.startswith(VARYING)])
    return tables


def test_deterministic_runs_repeat_and_a_resumed_one_ends_the_same(tiny_dataset_dir, tmp_path, runs):
    base_env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "TUNE_GLOBAL_CHECKPOINT_S")}
    logs, hold = tmp_path / "logs", tmp_path / "hold"
    logs.mkdir()
    hold.mkdir()

    def args(name):
        return [*TUNE_ARGS, "--data-dir", str(tiny_dataset_dir), "--storage", str(tmp_path / name / "rr"),
                "--results-dir", str(tmp_path / name / "results")]

    for name in ("a", "b"):
        run = runs(args(name), base_env, logs, name)
        assert run.wait() == 0, run.output()[-3000:]

    # Interrupted: Ctrl-C once the first trial has checkpointed epoch 2 (its rung-1 value
    # recorded by ASHA), then resumed to the end with the export.
    first = runs(args("c"), {**base_env, "SPIKESORT_TUNE_HOLD_AT": f"2:{hold}"}, logs, "c-ctrl-c")
    wait_until(lambda: held_and_saved(hold, tmp_path / "c" / "rr", 2, 1), "a trial parked at epoch 2", first)
    first.signal_group(signal.SIGINT)
    assert first.wait() == 130, first.output()[-3000:]
    first.stop_leftovers()
    resumed = runs([*args("c"), "--resume"], base_env, logs, "c-resume")
    assert resumed.wait() == 0, resumed.output()[-3000:]

    trace = {name: search_trace(tmp_path / name / "rr") for name in "abc"}
    assert len(trace["a"]) == SAMPLES
    assert any(epochs < EPOCHS for _, epochs, _ in trace["a"]), "ASHA stopped nothing: no decisions compared"
    assert trace["b"] == trace["a"]
    assert trace["c"] == trace["a"], "the resumed run took other trials or other stopping decisions"
    for name in "abc":
        (exp,) = (tmp_path / name / "rr").glob("ffn-T2-*")
        check_study_matches_trials(exp, "val_loss")

    tables = {name: exported_tables(tmp_path / name / "results") for name in "abc"}
    assert tables["a"] and set(tables["b"]) == set(tables["a"]) == set(tables["c"])
    for name in "bc":
        for file, frame in tables["a"].items():
            pd.testing.assert_frame_equal(tables[name][file], frame, check_exact=True, obj=f"{name}: {file}")

    record = json.loads(next((tmp_path / "a" / "rr").glob("ffn-T2-*/spikesort_run.json")).read_text())
    assert record["search"]["max_concurrent_trials"] == 1
    assert record["reproduce"]["deterministic"] and record["reproduce"]["torch_threads_per_trial"] == 1
    assert record["versions"]["torch"] and record["versions"]["ray"]
