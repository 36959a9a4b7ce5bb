"""tuning/metrics.py against scikit-learn, on random and degenerate predictions.

The project computes every score from one confusion matrix (no scikit-learn on the hot path);
these tests hold it to scikit-learn's definitions. One difference is deliberate and stated in
``scores_from_confusion``: a class absent from the truth is left out of the macro F1 (as
scikit-learn's balanced accuracy leaves it out), so the macro F1 is compared with
scikit-learn's over the classes present in the truth.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from tuning.metrics import classification_metrics


def sklearn_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict:
    """The same dictionary as ``classification_metrics``, from scikit-learn."""
    labels = np.arange(n_classes)
    present = np.unique(y_true)
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true": the case under test
        warnings.simplefilter("ignore", UserWarning)
        balanced = skm.balanced_accuracy_score(y_true, y_pred)
    return {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "balanced_accuracy": balanced,
        "macro_f1": skm.f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0),
        "recall": list(skm.recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)),
        "confusion_matrix": skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def assert_same(y_true, y_pred, n_classes):
    ours = classification_metrics(np.asarray(y_true), np.asarray(y_pred), n_classes)
    theirs = sklearn_metrics(np.asarray(y_true), np.asarray(y_pred), n_classes)
    for score in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert ours[score] == pytest.approx(theirs[score], abs=1e-12), score
    assert ours["recall"] == pytest.approx(theirs["recall"], abs=1e-12)
    assert ours["confusion_matrix"] == theirs["confusion_matrix"]


@pytest.mark.parametrize("n_classes", [2, 3, 6])
@pytest.mark.parametrize("seed", range(5))
def test_random_predictions_match_sklearn(n_classes, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    y_true = rng.integers(0, n_classes, n)
    # Mostly right, some noise, so that every score lies strictly between 0 and 1.
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, n_classes, n))
    assert_same(y_true, y_pred, n_classes)


@pytest.mark.parametrize("y_true, y_pred, n_classes", [
    pytest.param([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 1, 0], 3, id="a class never predicted"),
    pytest.param([0, 0, 1, 1, 1, 0], [0, 2, 1, 2, 1, 0], 3, id="a class absent from the truth, predicted"),
    pytest.param([0, 1, 1, 0], [0, 1, 1, 0], 4, id="two classes absent from truth and predictions"),
    pytest.param([0, 1, 2, 2, 1], [0, 0, 0, 0, 0], 3, id="one class predicted for all"),
    pytest.param([2, 2, 2], [2, 0, 1], 3, id="a single class in the truth"),
    pytest.param([0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5], 6, id="perfect"),
    pytest.param([0, 1, 0, 1], [1, 0, 1, 0], 2, id="all wrong"),
])
def test_degenerate_cases_match_sklearn(y_true, y_pred, n_classes):
    assert_same(y_true, y_pred, n_classes)


def test_the_deliberate_difference_macro_f1_leaves_out_classes_absent_from_the_truth():
    """scikit-learn's default macro F1 (labels seen in truth or predictions) counts a predicted
    class that is absent from the truth as an F1 of 0; the project does not."""
    y_true, y_pred = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])
    ours = classification_metrics(y_true, y_pred, 3)["macro_f1"]
    assert ours == pytest.approx(skm.f1_score(y_true, y_pred, labels=[0, 1], average="macro"))
    assert ours > skm.f1_score(y_true, y_pred, average="macro", zero_division=0)
