"""An ensemble of the top-k configurations of a search: each trained on the same rows with
:func:`tuning.training.fit`, their predicted class probabilities averaged.

The export scores it as its own approach of the results tree (``--ensemble K``:
:func:`tuning.export.reruns.run_job` trains the members beside the best configuration on every
fold); ``benchmarks/archive/ensemble.py`` measured it on its own.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tuning.data.readers import Dataset
from tuning.metrics import classification_metrics
from tuning.training import FitResult, TaskData, fit


def average_proba(members: Sequence[FitResult], X: np.ndarray, task: int = 0) -> np.ndarray:
    """The members' class probabilities for ``X``, averaged: shape (rows, classes)."""
    return np.mean([m.predict_proba(X, task) for m in members], axis=0)


def fit_members(family: str, configs: Sequence[dict], tasks: Sequence[TaskData], *, max_epochs: int,
                seed: int, metric: str = "accuracy", patience: int | None = None,
                device: str = "cpu") -> list[FitResult]:
    """One network per configuration, all on the same rows and seed."""
    return [fit(family, config, tasks, max_epochs=max_epochs, seed=seed, metric=metric,
                patience=patience, device=device) for config in configs]


def score_members(members: Sequence[FitResult], dataset: Dataset, test: np.ndarray, task: int = 0) -> dict:
    """Metrics of the first member alone and of the probability average of all of them."""
    truth = dataset.y[test]
    return {
        "single": classification_metrics(truth, members[0].predict(dataset.X[test], task), dataset.n_classes),
        "ensemble": classification_metrics(truth, average_proba(members, dataset.X[test], task).argmax(1),
                                           dataset.n_classes),
    }
