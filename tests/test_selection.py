"""The one best-trial rule (tuning.search.best_trial): picks on synthetic histories, and the driver
and the export naming the same trial of a real experiment."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from tuning.search import best_trial
from tuning.search.best_trial import pick_best, score_trial


def history(values, metric="val_accuracy", **extra):
    return [{metric: v, "training_iteration": i + 1, **{k: e[i] for k, e in extra.items()}}
            for i, v in enumerate(values)]


LUCKY = history([0.50, 0.90, 0.50, 0.50])   # one lucky epoch
STEADY = history([0.70, 0.80, 0.82, 0.81])  # good for several epochs running


def test_best_epoch_rule_takes_the_single_best_epoch():
    pick = pick_best({"lucky": LUCKY, "steady": STEADY}, "val_accuracy", "max", rule="best_epoch")
    assert (pick.trial_id, pick.score, pick.epoch) == ("lucky", 0.90, 2)


def test_window_rule_takes_the_best_three_epoch_mean():
    pick = pick_best({"lucky": LUCKY, "steady": STEADY}, "val_accuracy", "max", rule="window3")
    assert pick.trial_id == "steady"
    assert pick.score == pytest.approx((0.80 + 0.82 + 0.81) / 3)
    assert pick.epoch == 3 and pick.row["val_accuracy"] == 0.82  # best epoch inside the window
    assert best_trial.DEFAULT_RULE in best_trial.RULES
    assert pick_best({"lucky": LUCKY, "steady": STEADY}, "val_accuracy", "max") == \
        pick_best({"lucky": LUCKY, "steady": STEADY}, "val_accuracy", "max", rule=best_trial.DEFAULT_RULE)


def test_window_slides_and_short_trials_use_every_epoch():
    late = history([0.1, 0.2, 0.6, 0.7, 0.8])
    assert score_trial(late, "val_accuracy", "max", "window3").score == pytest.approx(0.7)
    short = history([0.6, 0.8])  # stopped after two epochs: the mean of both
    scored = score_trial(short, "val_accuracy", "max", "window3")
    assert scored.score == pytest.approx(0.7) and scored.epoch == 2


def test_minimised_objective():
    a = history([0.9, 0.3, 0.9, 0.9], metric="val_loss")
    b = history([0.6, 0.5, 0.5, 0.5], metric="val_loss")
    assert pick_best({"a": a, "b": b}, "val_loss", "min", "best_epoch").trial_id == "a"
    pick = pick_best({"a": a, "b": b}, "val_loss", "min", "window3")
    assert pick.trial_id == "b" and pick.score == pytest.approx(0.5) and pick.epoch == 2


def test_order_ties_missing_and_nan():
    # Ties go to the smallest trial id, whatever the order the trials come in.
    same = history([0.5, 0.6, 0.7])
    for order in (["b", "a"], ["a", "b"]):
        assert pick_best({k: same for k in order}, "val_accuracy", "max").trial_id == "a"
    # Rows out of order are read in epoch order; DataFrames and lists both work.
    shuffled = pd.DataFrame(list(reversed(history([0.2, 0.9, 0.9, 0.9, 0.2]))))
    assert score_trial(shuffled, "val_accuracy", "max", "window3").epoch == 2
    # A NaN epoch is never the best, and a window holding it never wins.
    nan = history([0.8, math.nan, 0.9, 0.2, 0.2])
    assert score_trial(nan, "val_accuracy", "max", "best_epoch").score == 0.9
    assert score_trial(nan, "val_accuracy", "max", "window3").score == pytest.approx((0.9 + 0.2 + 0.2) / 3)
    # Trials without the metric (or with nothing finite) are skipped; none at all: None.
    assert pick_best({"x": history([0.9], metric="val_loss"), "y": STEADY}, "val_accuracy", "max").trial_id == "y"
    assert pick_best({"x": [], "y": history([math.nan])}, "val_accuracy", "max") is None
    assert pick_best({}, "val_accuracy", "max") is None
    with pytest.raises(ValueError, match="window3"):
        pick_best({"y": STEADY}, "val_accuracy", "max", rule="luckiest")


def test_rank_trials_best_first():
    trials = {"c": STEADY, "a": LUCKY, "b": history([0.7, 0.7, 0.7])}
    assert [p.trial_id for p in best_trial.rank_trials(trials, "val_accuracy", "max")] == ["c", "b", "a"]
    assert [p.trial_id for p in best_trial.rank_trials(trials, "val_accuracy", "max", "best_epoch")] == ["a", "c", "b"]


def test_window_means_of_every_report():
    trial = history([0.7, 0.8, 0.9, 0.1], **{"val_accuracy/A2": [0.6, 0.7, 0.8, 0.0]})
    pick = pick_best({"t": trial}, "val_accuracy", "max")
    assert pick.means["val_accuracy"] == pytest.approx(0.8)
    assert pick.means["val_accuracy/A2"] == pytest.approx(0.7)


# ----------------------------------------------------------------------------- one rule everywhere
def read_results(trial_dir):
    return [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines() if line]


def test_driver_and_export_pick_the_same_trial(ray_2cpu, module_tiny_dataset_dir, tmp_path):
    from tuning.search.driver import run_tuning
    from tuning.export.exporter import best_trial_from_outcome, find_best_trial

    (outcome,) = run_tuning("ffn", "T3", data_dir=str(module_tiny_dataset_dir), storage=str(tmp_path / "rr"),
                            samples=4, max_epochs=5, grace_period=5, folds=2, repeats=1, verbose=0)
    histories = {p.name.removeprefix("trial_"): read_results(p) for p in outcome.path.glob("trial_*")}
    assert len(histories) == 4
    expected = pick_best(histories, "val_accuracy", "max")
    best = find_best_trial(str(outcome.path), "val_accuracy", "max")
    assert outcome.best_trial_id == best.trial_id == expected.trial_id
    assert outcome.best_epoch == best.epoch == expected.epoch
    assert best.value == pytest.approx(expected.score)
    assert outcome.best_metrics["val_accuracy"] == pytest.approx(expected.means["val_accuracy"])
    assert outcome.best_config == best.config
    # The tune command's hand-off to the export carries the same trial and value.
    handed = best_trial_from_outcome(outcome)
    assert (handed.trial_id, handed.epoch) == (best.trial_id, best.epoch)
    assert handed.value == pytest.approx(best.value)
