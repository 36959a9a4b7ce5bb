"""``--searcher``: what the Optuna study learns from ASHA's stops, the BOHB translation of
define-by-run spaces, and a tiny search + export with every choice (real Ray, no mocks)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

import models
import search_spaces
from tuning.search import searchers
from tuning.settings import SEARCHERS

MAX_EPOCHS = 4


def trial_histories(experiment: Path) -> dict[str, list[dict]]:
    """Tune trial id -> its results (result.json), oldest first."""
    histories = {}
    for folder in experiment.glob("trial_*"):
        rows = [json.loads(line) for line in (folder / "result.json").read_text().splitlines() if line.strip()]
        if rows:
            histories[rows[0]["trial_id"]] = rows
    return histories


def check_study_matches_trials(experiment: Path, metric: str) -> tuple[int, int]:
    """Every trial that stopped before MAX_EPOCHS is PRUNED with each epoch's value as an
    intermediate value; every trial that reached it is COMPLETE with its last value.
    Returns (pruned, complete)."""
    study, numbers = searchers.load_study(experiment)
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    histories = trial_histories(experiment)
    assert set(histories) == set(numbers)
    pruned = complete = 0
    for trial_id, rows in histories.items():
        ot_trial = by_number[numbers[trial_id]]
        values = {r["training_iteration"]: r[metric] for r in rows}
        assert ot_trial.intermediate_values == pytest.approx(values), trial_id
        last = rows[-1]["training_iteration"]
        if last < MAX_EPOCHS:
            assert ot_trial.state == optuna.trial.TrialState.PRUNED, (trial_id, last)
            pruned += 1
        else:
            assert ot_trial.state == optuna.trial.TrialState.COMPLETE, trial_id
            assert ot_trial.value == pytest.approx(rows[-1][metric])
            complete += 1
    return pruned, complete


def test_bohb_space_has_every_branch_and_configs_keep_only_their_own():
    for family in models.FAMILIES:
        tasks = ["A2", "A4"] if family.startswith("mtl-") else ["A2"]
        names = set(searchers.space_distributions(search_spaces.get_space(family, tasks)))
        assert {"lr", "optimizer", "momentum"} <= names, family
        if "ffn" in family:
            assert {f"ffn_units_l{i}" for i in range(4)} <= names
        if family.startswith("mtl-"):
            assert {"task_weight_A2", "task_weight_A4", "head_dropout"} <= names
    space = search_spaces.get_space("ffn", ["A2"])
    everything = {name: (dist.choices[0] if hasattr(dist, "choices") else dist.low)
                  for name, dist in searchers.space_distributions(space).items()}
    config = searchers.realise(space, {**everything, "optimizer": "adam", "ffn_n_layers": 2})
    assert "momentum" not in config and "ffn_units_l2" not in config
    assert config["ffn_units_l1"] == 16 and config["family"] == "ffn"


def test_asha_stopped_trials_reach_the_study_as_pruned(ray_2cpu, module_tiny_dataset_dir, tmp_path):
    from tuning.search.driver import run_tuning

    # Loss, not accuracy: the tiny data are separable, and ASHA never stops a trial that ties.
    outcome, = run_tuning("ffn", "T2", data_dir=str(module_tiny_dataset_dir), storage=str(tmp_path / "rr"),
                          samples=8, max_epochs=MAX_EPOCHS, grace_period=1, metric="loss", verbose=0)
    assert outcome.complete
    pruned, complete = check_study_matches_trials(outcome.path, "val_loss")
    assert pruned == outcome.n_stopped_early and pruned >= 1 and complete >= 1
    record = json.loads((outcome.path / "spikesort_run.json").read_text())
    assert record["search"]["search_algorithm"] == "StoppedAwareOptunaSearch"
    assert record["search"]["scheduler"] == "RestorableASHA"
    assert record["settings"]["searcher"] == "tpe"


@pytest.mark.slow
@pytest.mark.parametrize("searcher", SEARCHERS)
def test_every_searcher_runs_a_search_and_exports(searcher, ray_2cpu, module_tiny_dataset_dir, tmp_path):
    from tuning.search.driver import run_tuning
    from tuning.export.exporter import export_experiment

    outcome, = run_tuning("ffn", "T2", data_dir=str(module_tiny_dataset_dir), storage=str(tmp_path / "rr"),
                          samples=3, max_epochs=3, grace_period=1, searcher=searcher, verbose=0)
    assert outcome.complete and outcome.n_errored == 0 and outcome.best_config["family"] == "ffn"
    summary = export_experiment(outcome.path, tmp_path / "results", folds=2, repeats=1)
    run = json.loads(next((summary.results_dir / summary.approach / "Run Config").glob("run_*.json")).read_text())
    assert run["search_settings"]["searcher"] == searcher
    assert run["search_algorithm"]["scheduler"] == ("HyperBandForBOHB" if searcher == "bohb" else "RestorableASHA")
    row = summary.full_split.set_index("dataset").loc["T2"]
    assert 0 <= row["accuracy_mean"] <= 1
