"""Scikit-learn references, scored on the folds the networks used: the classical baseline.

``Reference PCA+SVM`` (StandardScaler -> PCA(10, whiten) -> RBF SVC), ``Reference LDA``
(StandardScaler -> LDA) and ``Reference tuned SVM`` (StandardScaler -> PCA(20, whiten) -> RBF
SVC whose C and gamma are picked by a 3-fold cross-validation inside (at most 1,000 stratified
rows of) each fold's training rows, then refitted on all of them: the peer a statistician
would pick) are fitted on each fold's training and
inner-validation rows and scored on its test rows.

The export scores them on its own full-split folds (:func:`reference_rows`, beside the
reruns) and writes them where ``compare`` looks for them first (:func:`cache_paths`,
``results/References/``, with the fold parameters and the data file's hash, so that they are
computed again only when those change). :func:`margins` sets a network's folds against them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tuning.data.readers import file_sha256
from tuning.errors import InputError
from tuning import statistics as st
from tuning.export.results_tree import INDIVIDUAL, RUN_CONFIG, SCORES

REFERENCE_FAMILY = "reference"
REFERENCE_FOLDER = "References"  # results/References/: the rows compare and the export share
REFERENCE_PCA_SVM = "Reference PCA+SVM"
REFERENCE_LDA = "Reference LDA"
REFERENCE_TUNED_SVM = "Reference tuned SVM"
REFERENCE_APPROACHES = (REFERENCE_PCA_SVM, REFERENCE_LDA, REFERENCE_TUNED_SVM)
REFERENCE_GRADIENT_BOOSTING = "Reference gradient boosting"
"""Not in every export (it costs several times the others); ``benchmarks/variants.py`` adds it."""
TUNED_SVM_C = (0.3, 1.0, 3.0, 10.0)
TUNED_SVM_GAMMA = (0.3, 1.0, 3.0)  # times 1 / n_components, the 'scale' gamma of whitened features
TUNED_SVM_INNER_FOLDS = 3
TUNED_SVM_TUNING_ROWS = 1000  # rows the grid search sees (stratified); the refit uses every training row
MODEL_DESCRIPTIONS = {
    REFERENCE_PCA_SVM: "StandardScaler -> PCA(n_components=min(10, n_features), whiten=True) -> SVC(kernel='rbf')",
    REFERENCE_LDA: "StandardScaler -> LinearDiscriminantAnalysis()",
    REFERENCE_TUNED_SVM: "StandardScaler -> PCA(n_components=min(20, n_features), whiten=True) -> SVC(kernel='rbf'), "
                         f"C in {list(TUNED_SVM_C)} and gamma in {list(TUNED_SVM_GAMMA)} / n_components picked by "
                         f"GridSearchCV (accuracy, stratified {TUNED_SVM_INNER_FOLDS}-fold, seeded) on at most "
                         f"{TUNED_SVM_TUNING_ROWS} stratified training rows of the fold, then refitted on all of them",
    REFERENCE_GRADIENT_BOOSTING: "HistGradientBoostingClassifier() with scikit-learn's defaults (100 iterations "
                                 "of depth-free trees with 31 leaves, learning rate 0.1), seeded",
}
FOLD_PARAMS = ("label_column", "folds", "repeats", "seed", "inner_val_fraction")
"""Run Config entries that fix the data and the folds."""
_TAIL = ["epochs", "best_epoch", "train_seconds", "n_parameters", "node_id", "experiment"]


def _pca_svm(n_features: int, seed: int = 0):  # deterministic: seed unused
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return make_pipeline(StandardScaler(), PCA(n_components=min(10, n_features), whiten=True), SVC(kernel="rbf"))


def _lda(n_features: int, seed: int = 0):  # deterministic: seed unused
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LinearDiscriminantAnalysis())


class TunedSVM:
    """An RBF SVM whose C and gamma are picked by a grid search with an inner cross-validation
    on (at most :data:`TUNED_SVM_TUNING_ROWS` stratified rows of) the training rows, then
    refitted with them on every training row. The subsample keeps the grid to a small share of
    an export: an SVM's fit grows about with the square of its rows."""

    def __init__(self, n_features: int, seed: int = 0):
        self.n_features, self.seed = n_features, seed

    def _pipeline(self):
        from sklearn.decomposition import PCA
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        components = min(20, self.n_features)
        return make_pipeline(StandardScaler(), PCA(n_components=components, whiten=True), SVC(kernel="rbf")), components

    def fit(self, X, y):
        from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split

        pipeline, components = self._pipeline()
        X_tune, y_tune = X, y
        if len(y) > TUNED_SVM_TUNING_ROWS:
            X_tune, _, y_tune, _ = train_test_split(X, y, train_size=TUNED_SVM_TUNING_ROWS, stratify=y,
                                                    random_state=self.seed)
        grid = {"svc__C": list(TUNED_SVM_C), "svc__gamma": [g / components for g in TUNED_SVM_GAMMA]}
        inner = StratifiedKFold(TUNED_SVM_INNER_FOLDS, shuffle=True, random_state=self.seed)
        search = GridSearchCV(pipeline, grid, cv=inner, scoring="accuracy", n_jobs=1).fit(X_tune, y_tune)
        self.best_params_ = search.best_params_
        self.model_ = pipeline.set_params(**search.best_params_).fit(X, y)
        return self

    def predict(self, X):
        return self.model_.predict(X)


def _tuned_svm(n_features: int, seed: int = 0) -> TunedSVM:
    return TunedSVM(n_features, seed)


def _gradient_boosting(n_features: int, seed: int = 0):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(random_state=seed)


_REFERENCE_MODELS = {REFERENCE_PCA_SVM: _pca_svm, REFERENCE_LDA: _lda, REFERENCE_TUNED_SVM: _tuned_svm}
EXTRA_REFERENCE_MODELS = {REFERENCE_GRADIENT_BOOSTING: _gradient_boosting}


def _n_parameters(pipeline) -> int:
    """Numbers stored by a fitted pipeline (arrays ending in ``_`` that shape predictions)."""
    names = ("mean_", "scale_", "components_", "explained_variance_", "support_vectors_", "dual_coef_",
             "intercept_", "coef_")
    pipeline = getattr(pipeline, "model_", pipeline)  # the tuned SVM: the pipeline it refitted
    if not hasattr(pipeline, "steps"):  # gradient boosting: its trees' nodes
        return int(sum(tree.nodes.size for stage in getattr(pipeline, "_predictors", []) for tree in stage))
    total = 0
    for _, step in pipeline.steps:
        for attr in names:
            value = getattr(step, attr, None)
            if isinstance(value, np.ndarray):
                total += int(value.size)
    return total


def reference_rows(X: np.ndarray, y: np.ndarray, n_classes: int, folds, dataset: str,
                   approaches=REFERENCE_APPROACHES) -> pd.DataFrame:
    """Score the scikit-learn references on the given folds.

    Args:
        X: float array ``(n_rows, n_samples)``, raw waveforms (standardised inside the models).
        y: int array ``(n_rows,)`` of class ids ``0..n_classes-1``.
        n_classes: K.
        folds: objects with ``.repeat .fold .seed .train .val .test`` (``tuning.data.splits.cv_folds``);
            each model is fitted on ``train`` plus ``val`` (no early stopping to feed) and
            scored on ``test``.
        dataset: name written to the ``dataset`` column.
        approaches: which references (names of :data:`REFERENCE_APPROACHES` and
            :data:`EXTRA_REFERENCE_MODELS`).

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
    builders = {**_REFERENCE_MODELS, **EXTRA_REFERENCE_MODELS}
    for approach in approaches:
        build = builders[approach]
        for fold in folds:
            fit_rows = np.sort(np.concatenate([fold.train, fold.val]))
            model = build(X.shape[1], seed=int(fold.seed))
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
                "n_parameters": _n_parameters(model), "node_id": node, "experiment": "scikit-learn reference",
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


def cache_paths(results_dir, dataset: str) -> tuple[Path, Path]:
    """(rows CSV, record JSON) of one dataset's reference rows under ``results/References/``."""
    folder = Path(results_dir) / REFERENCE_FOLDER
    return (folder / INDIVIDUAL / f"References_full_split_metrics_{dataset}.csv",
            folder / RUN_CONFIG / f"run_{dataset}.json")


def cache_plan(results_dir, dataset, rows: pd.DataFrame, params: dict) -> dict[Path, bytes]:
    """The cache files of ``rows`` (computed on the folds ``params`` fix: :data:`FOLD_PARAMS`)
    as bytes by path, for an all-or-nothing commit."""
    rows_csv, record_json = cache_paths(results_dir, dataset.name)
    record = cache_record(dataset.name, dataset.path, params, sha256(dataset.path))
    return {rows_csv: rows.to_csv(index=False).encode(),
            record_json: (json.dumps(record, indent=2) + "\n").encode()}


def margins(network: pd.DataFrame, reference: pd.DataFrame, metric: str = "accuracy",
            alpha: float = st.DEFAULT_ALPHA) -> pd.DataFrame:
    """The network's margin over each reference on one dataset's folds, best reference first.

    ``network`` and ``reference``: full-split rows (``repeat``, ``fold``, ``n_train``,
    ``n_val``, ``n_test``, ``metric`` as fractions) on the same folds; paired by
    (repeat, fold). Per reference: the mean difference in points with its 95% interval and
    the p-value of the corrected resampled t-test (Nadeau & Bengio: the folds share training
    rows, so the variance is inflated by n_test / n_train; it assumes the differences are
    roughly normal across folds).

    The best reference is the one with the highest mean on these same folds: the comparison
    against it is the least favourable to the network, so choosing it on these numbers makes
    the headline more cautious, never less. "Above every reference" needs each of the three
    one-sided tests to reject at ``alpha`` (an intersection-union test, which needs no
    multiplicity correction); ``verdict`` says "above", "below" (the best reference's
    interval entirely under 0) or "not separated".
    """
    key = ["repeat", "fold"]
    net = network.set_index(key)[metric]
    rows = []
    for approach, part in reference.groupby("approach", sort=False):
        ref = part.set_index(key)
        common = net.index.intersection(ref.index)
        if len(common) < 2:
            continue
        diffs = 100 * (net.loc[common].to_numpy(float) - ref.loc[common, metric].to_numpy(float))
        n_train = float((ref.loc[common, "n_train"] + ref.loc[common, "n_val"]).mean())
        n_test = float(ref.loc[common, "n_test"].mean())
        mean, low, high = st.corrected_mean_ci(diffs, n_train, n_test)
        t, p_two = st.corrected_resampled_ttest(diffs, n_train, n_test)
        p_above = p_two / 2 if mean > 0 else 1 - p_two / 2
        rows.append({"metric": metric, "reference": approach, "reference_mean": 100 * float(ref.loc[common, metric].mean()),
                     "network_mean": 100 * float(net.loc[common].mean()), "margin": mean, "low": low, "high": high,
                     "p_above": p_above, "folds": len(common)})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame = frame.sort_values("reference_mean", ascending=False, ignore_index=True)
    above_all = bool((frame["p_above"] < alpha).all() and (frame["margin"] > 0).all())
    best = frame.iloc[0]
    frame["verdict"] = "above" if above_all else ("below" if best["high"] < 0 else "not separated")
    frame["best"] = [i == 0 for i in range(len(frame))]
    return frame


def margin_line(frame: pd.DataFrame, family: str | None = None) -> str:
    """One console line: the margin over the best reference and what it means; the advice
    leaves out ``tune auto`` when ``family`` already is ``auto``."""
    if frame.empty:
        return "no classical reference scored on these folds"
    best = frame.iloc[0]
    name = str(best["reference"]).removeprefix("Reference ")
    head = (f"{best['margin']:+.2f} points [{best['low']:+.2f}, {best['high']:+.2f}] over the best classical "
            f"reference ({name}, {best['reference_mean']:.1f}% {str(best['metric']).replace('_', ' ')})")
    if best["verdict"] == "above":
        return f"{head}: above every reference"
    tries = "a longer search with --samples" if family == "auto" else "tune auto, or a longer search with --samples"
    if best["verdict"] == "below":
        return f"{head}: BELOW it; the classical model sorts these spikes better: try {tries}, or use the reference"
    other = "" if family == "auto" else "another family, "
    return f"{head}: not shown above every reference (try {other}{tries})"
