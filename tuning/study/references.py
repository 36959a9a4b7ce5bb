"""Scikit-learn references for the comparison, scored on the folds the networks used.

``Reference PCA+SVM`` (StandardScaler -> PCA(10, whiten) -> RBF SVC) and ``Reference LDA``
(StandardScaler -> LDA) are fitted on each fold's training and inner-validation rows and
scored on its test rows. The folds are rebuilt from an approach's ``Run Config`` and checked
against its stored fold assignment. Caching the rows under ``results/References/`` (and
recomputing them when the fold parameters or the data file change) is done by the
comparison's entry, :mod:`tuning.study.comparison`; this module only fits and scores.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tuning.data.readers import file_sha256
from tuning.errors import InputError
from tuning.export.results_tree import SCORES

REFERENCE_FAMILY = "reference"
REFERENCE_PCA_SVM = "Reference PCA+SVM"
REFERENCE_LDA = "Reference LDA"
REFERENCE_APPROACHES = (REFERENCE_PCA_SVM, REFERENCE_LDA)
MODEL_DESCRIPTIONS = {
    REFERENCE_PCA_SVM: "StandardScaler -> PCA(n_components=min(10, n_features), whiten=True) -> SVC(kernel='rbf')",
    REFERENCE_LDA: "StandardScaler -> LinearDiscriminantAnalysis()",
}
FOLD_PARAMS = ("label_column", "folds", "repeats", "seed", "inner_val_fraction")
"""Run Config entries that fix the data and the folds."""
_TAIL = ["epochs", "best_epoch", "train_seconds", "n_parameters", "node_id", "experiment"]


def _pca_svm(n_features: int):
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return make_pipeline(StandardScaler(), PCA(n_components=min(10, n_features), whiten=True), SVC(kernel="rbf"))


def _lda(n_features: int):
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LinearDiscriminantAnalysis())


_REFERENCE_MODELS = {REFERENCE_PCA_SVM: _pca_svm, REFERENCE_LDA: _lda}


def _n_parameters(pipeline) -> int:
    """Numbers stored by a fitted pipeline (arrays ending in ``_`` that shape predictions)."""
    names = ("mean_", "scale_", "components_", "explained_variance_", "support_vectors_", "dual_coef_",
             "intercept_", "coef_")
    total = 0
    for _, step in pipeline.steps:
        for attr in names:
            value = getattr(step, attr, None)
            if isinstance(value, np.ndarray):
                total += int(value.size)
    return total


def reference_rows(X: np.ndarray, y: np.ndarray, n_classes: int, folds, dataset: str) -> pd.DataFrame:
    """Score the scikit-learn references on the given folds.

    Args:
        X: float array ``(n_rows, n_samples)``, raw waveforms (standardised inside the models).
        y: int array ``(n_rows,)`` of class ids ``0..n_classes-1``.
        n_classes: K.
        folds: objects with ``.repeat .fold .seed .train .val .test`` (``tuning.data.splits.cv_folds``);
            each model is fitted on ``train`` plus ``val`` (no early stopping to feed) and
            scored on ``test``.
        dataset: name written to the ``dataset`` column.

    Returns:
        Rows in the Individual Dataset Results columns (scores as fractions), approach
        ``Reference PCA+SVM`` and ``Reference LDA``, family ``reference``; ``epochs`` and
        ``best_epoch`` empty, ``train_seconds`` the fit time.
    """
    import platform

    from tuning.metrics import classification_metrics

    X = np.asarray(X, dtype=np.float64)
    node = platform.node()
    records = []
    for approach, build in _REFERENCE_MODELS.items():
        for fold in folds:
            fit_rows = np.sort(np.concatenate([fold.train, fold.val]))
            model = build(X.shape[1])
            start = time.perf_counter()
            model.fit(X[fit_rows], y[fit_rows])
            seconds = time.perf_counter() - start
            scores = classification_metrics(y[fold.test], model.predict(X[fold.test]), n_classes)
            record = {
                "dataset": dataset, "approach": approach, "family": REFERENCE_FAMILY,
                "repeat": int(fold.repeat), "fold": int(fold.fold), "seed": int(fold.seed),
                "n_train": int(len(fold.train)), "n_val": int(len(fold.val)), "n_test": int(len(fold.test)),
                **{s: scores[s] for s in SCORES},
                **{f"recall_class_{k}": r for k, r in enumerate(scores["recall"])},
                "epochs": np.nan, "best_epoch": np.nan, "train_seconds": seconds,
                "n_parameters": _n_parameters(model), "node_id": node, "experiment": "compare: scikit-learn reference",
            }
            records.append(record)
    columns = ["dataset", "approach", "family", "repeat", "fold", "seed", "n_train", "n_val", "n_test", *SCORES,
               *[f"recall_class_{k}" for k in range(n_classes)], *_TAIL]
    return pd.DataFrame(records, columns=columns)


def read_json(path: Path) -> dict | None:
    """A JSON object from ``path``, or None when missing, unreadable or not an object."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def sha256(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None


def fold_params(config: dict) -> dict:
    """The fold-fixing entries of a Run Config (``FOLD_PARAMS``)."""
    # Defaults are tuning.data.splits.cv_folds' own; a wrong guess is caught by pairing later.
    defaults = {"label_column": None, "folds": 5, "repeats": 3, "seed": 0, "inner_val_fraction": 0.15}
    return {k: config.get(k, defaults[k]) for k in FOLD_PARAMS}


def rebuild_folds(config: dict, run_config_path: Path, dataset: str):
    """The data and the folds an approach was scored on, from its Run Config.

    Returns:
        ``(data, folds)``: a :class:`tuning.data.readers.Dataset` and ``tuning.data.splits.cv_folds``.

    Raises:
        InputError: the data cannot be loaded, the folds cannot be rebuilt, or they differ
            from the fold assignment the export stored beside the Run Config.
    """
    from tuning.data.readers import load_dataset
    from tuning.data.splits import cv_folds, fold_assignment, min_rows_per_class

    params = fold_params(config)
    data_path = Path(str(config["path"])).expanduser()
    try:
        data = load_dataset(data_path, params["label_column"], min_rows_per_class=min_rows_per_class(int(params["folds"])),
                            columns=config.get("columns"))
        folds = cv_folds(data.y, int(params["folds"]), int(params["repeats"]), int(params["seed"]),
                         float(params["inner_val_fraction"]))
    except (InputError, ValueError) as err:
        raise InputError(f"cannot rebuild the folds from {run_config_path}: {err}") from None
    # The exporter stores which fold scored each row; if it is there, the rebuilt folds must match it.
    folds_csv = Path(run_config_path).parent / f"folds_{dataset}.csv"
    if folds_csv.is_file():
        try:
            stored = pd.read_csv(folds_csv)
            rebuilt = fold_assignment(folds, len(data.y))
            same = list(stored.columns) == list(rebuilt.columns) and np.array_equal(stored.to_numpy(), rebuilt.to_numpy())
        except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
            same = True  # unreadable bookkeeping: fall back on the pairing check
        if not same:
            raise InputError(f"the folds rebuilt from {run_config_path} differ from {folds_csv}")
    return data, folds


def cache_record(dataset: str, data_path, params: dict, digest: str) -> dict:
    """What the reference cache records beside its rows, to know when they are stale."""
    import sklearn

    return {"dataset": dataset, "path": str(data_path), **params, "data_sha256": digest,
            "models": dict(MODEL_DESCRIPTIONS),
            "fit_on": "train + inner validation rows of each fold; scored on the fold's test rows",
            "scikit-learn": sklearn.__version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
