"""The classical references every export scores (issue 26): pinned to scikit-learn fitted on
the same folds, and the network's margin over them. Fast tier: no Ray."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import make_waveforms
from tuning import statistics as st
from tuning.data.splits import cv_folds
from tuning.export import references


def test_reference_rows_equal_scikit_learn_fitted_on_the_same_folds(monkeypatch):
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    X, y = make_waveforms(3, 40, seed=3)
    monkeypatch.setattr(references, "TUNED_SVM_TUNING_ROWS", 60)  # the grid sees a stratified subsample
    folds = cv_folds(y, 3, 1, 7, 0.15)
    rows = references.reference_rows(X, y, 3, folds, "T3")
    assert set(rows["approach"]) == set(references.REFERENCE_APPROACHES) and len(rows) == 3 * len(folds)
    X = X.astype(np.float64)
    for fold in folds:
        fit = np.sort(np.concatenate([fold.train, fold.val]))
        grid = GridSearchCV(make_pipeline(StandardScaler(), PCA(20, whiten=True), SVC(kernel="rbf")),
                            {"svc__C": [0.3, 1.0, 3.0, 10.0], "svc__gamma": [0.3 / 20, 1 / 20, 3 / 20]},
                            cv=StratifiedKFold(3, shuffle=True, random_state=fold.seed), scoring="accuracy")
        X_tune, _, y_tune, _ = train_test_split(X[fit], y[fit], train_size=60, stratify=y[fit],
                                                random_state=fold.seed)
        best = grid.fit(X_tune, y_tune).best_params_
        tuned = make_pipeline(StandardScaler(), PCA(20, whiten=True), SVC(kernel="rbf")).set_params(**best)
        expected = {
            "Reference LDA": make_pipeline(StandardScaler(), LinearDiscriminantAnalysis()),
            "Reference PCA+SVM": make_pipeline(StandardScaler(), PCA(10, whiten=True), SVC(kernel="rbf")),
            "Reference tuned SVM": tuned,  # refitted on every training row with the picked C and gamma
        }
        for name, model in expected.items():
            accuracy = float(np.mean(model.fit(X[fit], y[fit]).predict(X[fold.test]) == y[fold.test]))
            row = rows[(rows["approach"] == name) & (rows["repeat"] == fold.repeat) & (rows["fold"] == fold.fold)]
            assert row["accuracy"].item() == pytest.approx(accuracy, abs=1e-12), name


def fold_frame(accuracies, n_train=300, n_val=50, n_test=90):
    return pd.DataFrame({"repeat": [i // 5 for i in range(len(accuracies))], "fold": [i % 5 for i in range(len(accuracies))],
                         "accuracy": accuracies, "n_train": n_train, "n_val": n_val, "n_test": n_test})


def references_frame(by_name: dict) -> pd.DataFrame:
    return pd.concat([fold_frame(acc).assign(approach=name) for name, acc in by_name.items()], ignore_index=True)


def test_margins_match_a_hand_computation_best_reference_first():
    rng = np.random.default_rng(0)
    net = 0.80 + rng.normal(0, 0.01, 15)
    lda, svm = 0.70 + rng.normal(0, 0.01, 15), 0.78 + rng.normal(0, 0.01, 15)
    frame = references.margins(fold_frame(net), references_frame({"Reference LDA": lda, "Reference tuned SVM": svm}))
    assert frame["reference"].tolist() == ["Reference tuned SVM", "Reference LDA"]  # the best (highest mean) first
    mean, low, high = st.corrected_mean_ci(100 * (net - svm), 350, 90)
    best = frame.iloc[0]
    assert (best["margin"], best["low"], best["high"]) == pytest.approx((mean, low, high))
    assert best["reference_mean"] == pytest.approx(100 * svm.mean()) and best["folds"] == 15


@pytest.mark.parametrize("shift, verdict", [(0.05, "above"), (-0.05, "below"), (0.0, "not separated")])
def test_margin_verdicts(shift, verdict):
    rng = np.random.default_rng(1)
    svm = 0.78 + rng.normal(0, 0.02, 15)
    net = svm + shift + rng.normal(0, 0.01, 15)
    frame = references.margins(fold_frame(net), references_frame({"Reference tuned SVM": svm,
                                                                   "Reference LDA": svm - 0.1}))
    assert set(frame["verdict"]) == {verdict}
    line = references.margin_line(frame)
    assert "over the best classical reference (tuned SVM, " in line
    assert {"above": "above every reference", "below": "BELOW it",
            "not separated": "not shown above every reference"}[verdict] in line
    auto = references.margin_line(frame, "auto")
    if verdict == "above":
        assert auto == line
    else:  # a user who already searched every family is not told to
        assert "tune auto" in line and "tune auto" not in auto and "another family" not in auto


def test_above_the_best_but_not_every_reference_is_not_called_above():
    """An intersection-union test: one reference the network is not shown above is enough."""
    rng = np.random.default_rng(2)
    best = 0.78 + rng.normal(0, 0.005, 15)
    net = best + 0.04 + rng.normal(0, 0.005, 15)
    noisy = 0.70 + rng.normal(0, 0.25, 15).clip(-0.6, 0.25)  # lower mean, far too noisy to separate
    frame = references.margins(fold_frame(net), references_frame({"Reference tuned SVM": best, "Reference LDA": noisy}))
    assert frame.iloc[0]["reference"] == "Reference tuned SVM" and frame.iloc[0]["p_above"] < 0.05
    assert frame.iloc[1]["p_above"] >= 0.05 and set(frame["verdict"]) == {"not separated"}
