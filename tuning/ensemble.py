"""An ensemble of the top-k configurations of a search: each trained on the same rows with
:func:`tuning.training.fit`, their predicted class probabilities averaged.

Scored like a rerun (:func:`tuning.reruns.run_job`: same fold, same early stopping on the
inner validation part, same metrics), so it can sit beside the single best configuration
on identical folds. Not yet an approach of the export's results tree; measured by
``benchmarks/ensemble.py``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from tuning.data import Dataset
from tuning.metrics import classification_metrics
from tuning.training import FitResult, TaskData, _logits, _prepare_inputs, fit


@torch.no_grad()
def predict_proba(result: FitResult, X: np.ndarray, task: int = 0) -> np.ndarray:
    """Class probabilities, shape (rows, classes), of one trained network."""
    result.model.eval()
    x = torch.from_numpy(_prepare_inputs(X, result.normalisers[task], result.input_length, result.n_channels))
    return torch.softmax(_logits(result.model, x, task, result.device), dim=1).numpy()


def fit_members(family: str, configs: Sequence[dict], tasks: Sequence[TaskData], *, max_epochs: int,
                seed: int, metric: str = "accuracy", patience: int | None = None,
                device: str = "cpu") -> list[FitResult]:
    """One network per configuration, all on the same rows and seed."""
    return [fit(family, config, tasks, max_epochs=max_epochs, seed=seed, metric=metric,
                patience=patience, device=device) for config in configs]


def score_members(members: Sequence[FitResult], dataset: Dataset, test: np.ndarray, task: int = 0) -> dict:
    """Metrics of the first member alone and of the probability average of all of them."""
    probabilities = [predict_proba(m, dataset.X[test], task) for m in members]
    truth = dataset.y[test]
    return {
        "single": classification_metrics(truth, probabilities[0].argmax(1), dataset.n_classes),
        "ensemble": classification_metrics(truth, np.mean(probabilities, axis=0).argmax(1), dataset.n_classes),
    }
