"""Scikit-learn reference rows for ``compare``, scored on the folds the networks used.

``Reference PCA+SVM`` (StandardScaler -> PCA(10, whiten) -> RBF SVC) and ``Reference LDA``
(StandardScaler -> LDA) are fitted on each fold's training and inner-validation rows and
scored on its test rows. The folds are rebuilt from an approach's ``Run Config`` and checked
against its stored fold assignment; the rows are cached under ``results/References/`` and
recomputed when the fold parameters or the data file change.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tuning import atomic
from tuning.compare import (_KIND_ORDER, _TAIL, FOLD_PARAMS, METRICS_MARK, REFERENCE, REFERENCE_APPROACHES,
                            REFERENCE_FAMILY, REFERENCE_FOLDER, REFERENCE_LDA, REFERENCE_PCA_SVM, _read_rows,
                            pair_rows)
from tuning.errors import InputError
from tuning.results_tree import INDIVIDUAL, RUN_CONFIG, SCORES, natural_key


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
        folds: objects with ``.repeat .fold .seed .train .val .test`` (``tuning.splits.cv_folds``);
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


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _fold_params(config: dict) -> dict:
    # Defaults are tuning.splits.cv_folds' own; a wrong guess is caught by pair_rows later.
    defaults = {"label_column": None, "folds": 5, "repeats": 3, "seed": 0, "inner_val_fraction": 0.15}
    return {k: config.get(k, defaults[k]) for k in FOLD_PARAMS}


def _pairs_with(ref: pd.DataFrame, approach_rows: pd.DataFrame) -> str | None:
    """None if every reference approach pairs with ``approach_rows``, else the reason."""
    for name in REFERENCE_APPROACHES:
        part = ref[ref["approach"] == name]
        if part.empty:
            return f"the cache lacks '{name}'"
        try:
            pair_rows(part, approach_rows)
        except InputError as err:
            return str(err)
    return None


def load_or_compute_references(results_dir, dataset: str, approach_rows: pd.DataFrame,
                               run_config_path, log=print) -> tuple[pd.DataFrame | None, str | None]:
    """Reference rows for one dataset, from the cache or computed on the Run Config's folds.

    Args:
        results_dir: the results tree root.
        dataset: dataset name as in the result rows.
        approach_rows: one approach's rows of this dataset; the reference rows must pair
            with them (same folds), else they are not used.
        run_config_path: that approach's ``Run Config/run_<DATASET>.json``.
        log: called with progress lines.

    Returns:
        ``(rows, None)``, or ``(None, reason)`` when the references cannot be had (no Run
        Config, data file gone, folds that do not match).
    """
    from tuning.data import load_dataset
    from tuning.splits import cv_folds, fold_assignment, min_rows_per_class

    results_dir, run_config_path = Path(results_dir), Path(run_config_path)
    config = _read_json(run_config_path)
    if config is None or "path" not in config:
        return None, f"no readable {run_config_path} with a data path"
    params = _fold_params(config)
    data_path = Path(str(config["path"])).expanduser()
    digest = _sha256(data_path)

    cache_csv = results_dir / REFERENCE_FOLDER / INDIVIDUAL / f"References{METRICS_MARK}{dataset}.csv"
    cache_json = results_dir / REFERENCE_FOLDER / RUN_CONFIG / f"run_{dataset}.json"
    cached = _read_json(cache_json)
    if cached is not None and cache_csv.is_file() and _fold_params(cached) == params \
            and (digest is None or cached.get("data_sha256") == digest):
        try:
            rows = _read_rows(cache_csv)
        except InputError:
            rows = None
        if rows is not None and not rows.empty and _pairs_with(rows, approach_rows) is None:
            return rows, None

    if digest is None:
        return None, f"data file {data_path} (from {run_config_path}) is not readable here"
    try:
        data = load_dataset(data_path, params["label_column"], min_rows_per_class=min_rows_per_class(int(params["folds"])))
        folds = cv_folds(data.y, int(params["folds"]), int(params["repeats"]), int(params["seed"]),
                         float(params["inner_val_fraction"]))
    except (InputError, ValueError) as err:
        return None, f"cannot rebuild the folds from {run_config_path}: {err}"
    # The exporter stores which fold scored each row; if it is there, the rebuilt folds must match it.
    folds_csv = run_config_path.parent / f"folds_{dataset}.csv"
    if folds_csv.is_file():
        try:
            stored = pd.read_csv(folds_csv)
            rebuilt = fold_assignment(folds, len(data.y))
            same = list(stored.columns) == list(rebuilt.columns) and np.array_equal(stored.to_numpy(), rebuilt.to_numpy())
        except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
            same = True  # unreadable bookkeeping: fall back on the pair_rows check below
        if not same:
            return None, f"the folds rebuilt from {run_config_path} differ from {folds_csv}"
    log(f"computing reference rows for {dataset} (PCA+SVM and LDA on {len(folds)} folds)...")
    rows = reference_rows(data.X, data.y, data.n_classes, folds, dataset)
    reason = _pairs_with(rows, approach_rows)
    if reason is not None:
        return None, reason
    with atomic.atomic_path(cache_csv) as tmp:
        rows.to_csv(tmp, index=False)
    import sklearn

    record = {"dataset": dataset, "path": str(data_path), **params, "data_sha256": digest,
              "models": {REFERENCE_PCA_SVM: "StandardScaler -> PCA(n_components=min(10, n_features), whiten=True) "
                                            "-> SVC(kernel='rbf')",
                         REFERENCE_LDA: "StandardScaler -> LinearDiscriminantAnalysis()"},
              "fit_on": "train + inner validation rows of each fold; scored on the fold's test rows",
              "scikit-learn": sklearn.__version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic.write_text(cache_json, json.dumps(record, indent=2))
    rows = _read_rows(cache_csv)  # the same dtypes as a cache hit
    return rows, None


def add_references(results_dir, rows: pd.DataFrame, log=print) -> tuple[pd.DataFrame, list[str]]:
    """``rows`` plus reference rows for every dataset that has a usable Run Config.

    The Run Config is taken from the dataset's best single-task approach if it has one,
    else from the first other approach that does. Returns the rows and notes on datasets
    without references.
    """
    results_dir = Path(results_dir)
    nets = rows[rows["kind"] != REFERENCE]
    extra, notes = [], []
    for dataset in sorted(nets["dataset"].unique(), key=natural_key):
        here = nets[nets["dataset"] == dataset]
        order = here.groupby("approach")["accuracy"].mean()
        kinds = here.groupby("approach")["kind"].first()
        candidates = sorted(order.index, key=lambda a: (_KIND_ORDER[kinds[a]], -order[a], a))
        chosen = None
        for approach in candidates:
            folder = Path(here[here["approach"] == approach]["source_file"].iloc[0]).parent.parent
            config = folder / RUN_CONFIG / f"run_{dataset}.json"
            if config.is_file():
                chosen = (approach, config)
                break
        if chosen is None:
            notes.append(f"{dataset}: no reference rows (no Run Config/run_{dataset}.json in any approach)")
            continue
        approach, config = chosen
        ref, reason = load_or_compute_references(results_dir, dataset, here[here["approach"] == approach],
                                                 config, log=log)
        if ref is None:
            notes.append(f"{dataset}: no reference rows ({reason})")
            continue
        ref = ref.copy()
        ref["family"] = REFERENCE_FAMILY
        ref["kind"] = REFERENCE
        ref["multitask"] = False
        ref["source_file"] = str(results_dir / REFERENCE_FOLDER / INDIVIDUAL / f"References{METRICS_MARK}{dataset}.csv")
        extra.append(ref)
    if extra:
        rows = pd.concat([rows, *extra], ignore_index=True)
        for col in ("repeat", "fold", "seed", "n_train", "n_val", "n_test"):
            rows[col] = pd.to_numeric(rows[col], errors="coerce").astype("Int64")
    return rows, notes
