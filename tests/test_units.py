"""Every unit shown: per-unit recall beside the scores, and a unit the network (almost)
never assigns spikes to flagged with its likely cause and the option that addresses it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import recall_score

from tuning.metrics import UNIT_RECALL_FLOOR, confusion_matrix, unit_recalls, weak_unit_lines


def skewed_predictions(seed: int = 0):
    """Six units of an A12-like imbalance; the classifier never predicts unit 2 and rarely unit 4."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(6, size=3000, p=[0.29, 0.21, 0.18, 0.13, 0.1, 0.09])
    pred = np.where(rng.random(truth.size) < 0.6, truth, rng.choice(6, size=truth.size))
    pred[pred == 2] = 0  # unit 2: never predicted
    pred[(pred == 4) & (rng.random(truth.size) < 0.95)] = 1  # unit 4: rarely
    return truth, pred


def test_per_unit_recall_equals_scikit_learns():
    truth, pred = skewed_predictions()
    units = unit_recalls(confusion_matrix(truth, pred, 6), [f"u{k}" for k in range(6)])
    assert [u["recall"] for u in units] == pytest.approx(list(recall_score(truth, pred, average=None)))
    assert [u["share"] for u in units] == pytest.approx(list(np.bincount(truth, minlength=6) / truth.size))
    assert [u["never_predicted"] for u in units] == [False, False, True, False, False, False]


def test_a_unit_never_predicted_is_flagged_with_the_option_that_addresses_it():
    truth, pred = skewed_predictions()
    units = unit_recalls(confusion_matrix(truth, pred, 6), [f"u{k}" for k in range(6)])
    lines = weak_unit_lines(units, "accuracy")
    flagged = [line.split()[1] for line in lines]
    assert flagged == [u["unit"] for u in units if u["recall"] < UNIT_RECALL_FLOOR] and "u2" in flagged
    (u2,) = [line for line in lines if line.startswith("unit u2 ")]
    assert "never predicted" in u2 and "--metric balanced_accuracy" in u2
    # Under a balanced objective the advice is about the data, not the objective.
    assert all("--metric" not in line for line in weak_unit_lines(units, "balanced_accuracy"))
    assert weak_unit_lines(unit_recalls(np.eye(3) * 50, "abc")) == []


def test_the_export_summary_prints_every_unit_and_the_warning(capsys):
    from tuning.export.exporter import ExportSummary, print_summary

    truth, pred = skewed_predictions()
    frame = pd.DataFrame([{"dataset": "A12", **{f"{s}_{k}": 0.5 for s in ("accuracy", "balanced_accuracy", "macro_f1")
                                                for k in ("mean", "ci95_low", "ci95_high")}}])
    summary = ExportSummary("Classic CNN PyTorch", Path("results"), None, [], frame, frame,
                            units={"A12": unit_recalls(confusion_matrix(truth, pred, 6), list("012345"))})
    print_summary(summary)
    out = capsys.readouterr().out
    assert "A12: unit recall (share of spikes): 0 " in out
    assert "A12: warning: unit 2 (" in out and "never predicted" in out


def test_the_study_report_flags_a_unit_never_predicted():
    from tuning.study.replicated_report import unit_lines

    truth, pred = skewed_predictions()
    cm = confusion_matrix(truth, pred, 6).tolist()
    records = [{"family": "cnn", "replicate": r, "scores": [{"dataset": "A12", "fraction": 1.0, "confusion_matrix": cm}]}
               for r in range(3)]
    lines = unit_lines(records, {"A12": tuple("abcdef")}, "accuracy")
    assert any(line.startswith("- **A12, cnn**: unit recall") for line in lines)
    assert any("warning: unit c (" in line and "never predicted" in line for line in lines)
