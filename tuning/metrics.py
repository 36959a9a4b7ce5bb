"""Classification metrics shared by trials, reruns and the comparison.

All metrics come from one confusion matrix, so they agree with each other exactly and cost
microseconds per epoch (no scikit-learn call on the hot path).
"""

from __future__ import annotations

import numpy as np

SCORES = ("accuracy", "balanced_accuracy", "macro_f1")
"""Scores of a classifier (fractions in [0, 1], higher is better)."""

METRICS = (*SCORES, "loss")
"""Values of ``--metric``; ``loss`` is minimised, the others maximised."""


def metric_mode(metric: str) -> str:
    """``"min"`` for the loss, ``"max"`` for the scores."""
    return "min" if metric == "loss" else "max"


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts, shape (n_classes, n_classes): row = true class, column = predicted class."""
    flat = np.asarray(y_true, dtype=np.int64) * n_classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def scores_from_confusion(cm: np.ndarray) -> dict:
    """Accuracy, balanced accuracy, macro F1 (fractions in [0, 1]) and per-class recall.

    Classes absent from ``y_true`` are left out of the balanced accuracy and macro F1, as
    scikit-learn does for balanced accuracy.
    """
    cm = np.asarray(cm, dtype=np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    true_positive = np.diag(cm)
    present = support > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(present, true_positive / support, 0.0)
        precision = np.where(predicted > 0, true_positive / predicted, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    total = cm.sum()
    return {
        "accuracy": float(true_positive.sum() / total) if total else 0.0,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "recall": [float(r) for r in recall],
    }


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict:
    """Scores plus the confusion matrix (as nested lists, JSON-ready)."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    return {**scores_from_confusion(cm), "confusion_matrix": cm.tolist()}


UNIT_RECALL_FLOOR = 0.10
"""A unit (class) recalled below this is flagged: for a lab each unit is a neuron, and a
sorter that assigns almost none of its spikes to it has lost a cell, whatever the mean."""


def unit_recalls(confusion, names) -> list[dict]:
    """Per unit (row of ``confusion``: true class; columns: predicted): its name, share of
    the spikes, recall (fractions; NaN for a unit with no spike) and whether any spike was
    assigned to it at all."""
    cm = np.asarray(confusion, dtype=np.float64)
    support, predicted, total = cm.sum(axis=1), cm.sum(axis=0), cm.sum()
    return [{"unit": str(name), "share": float(support[k] / total) if total else float("nan"),
             "recall": float(cm[k, k] / support[k]) if support[k] else float("nan"),
             "never_predicted": bool(predicted[k] == 0)} for k, name in enumerate(names)]


def unit_recall_line(units: list[dict]) -> str:
    """``unit recall (share of spikes): a 93.1% (28%), b 12.0% (9%)``."""
    return "unit recall (share of spikes): " + ", ".join(
        f"{u['unit']} {100 * u['recall']:.1f}% ({100 * u['share']:.0f}%)" for u in units if u["recall"] == u["recall"])


def weak_unit_lines(units: list[dict], metric: str = "accuracy", floor: float = UNIT_RECALL_FLOOR) -> list[str]:
    """One line per unit recalled below ``floor``: what happened, the likely cause and what to try."""
    out = []
    for u in units:
        if not u["recall"] < floor:  # NaN (no spike of it) is not flagged
            continue
        what = "never predicted" if u["never_predicted"] else f"recall {100 * u['recall']:.1f}%"
        if metric in ("balanced_accuracy", "macro_f1"):
            advice = ("the network confuses it with other units (see the confusion matrix): more of its spikes, "
                      "or more channels per spike, may separate it")
        else:
            advice = (f"the objective ({metric}) rewards the larger units: tune with --metric balanced_accuracy "
                      "(a class-weighted loss is a searched choice either way)")
        out.append(f"unit {u['unit']} ({100 * u['share']:.1f}% of spikes): {what}, below the "
                   f"{100 * floor:.0f}% floor; {advice}")
    return out
