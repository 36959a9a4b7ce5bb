"""``python -m tuning compare``: does multi-task learning help, per dataset?

Reads every approach's per-fold rows from the results tree::

    results/<Approach>/Individual Dataset Results/<prefix>_full_split_metrics_<DATASET>.csv
    results/<Approach>/Individual Dataset Results/<prefix>_confusion_matrix_<DATASET>.csv
    results/<Approach>/Run Config/run_<DATASET>.json

and, per dataset, compares the best single-task approach (highest mean accuracy) with each
multi-task approach on the folds they share: rows with the same ``(dataset, repeat, fold)``
were scored on identical folds, so the per-fold differences are paired. The test is the
corrected resampled t-test of Nadeau & Bengio (2003) (:mod:`tuning.stats`): a plain
paired t-test over cross-validation folds over-rejects because the folds' training sets
overlap.

Two scikit-learn reference rows (``Reference PCA+SVM``: StandardScaler -> PCA(whiten) ->
RBF SVC; ``Reference LDA``: StandardScaler -> LDA) are scored on the same folds, rebuilt
from the Run Config, and cached in
``results/References/Individual Dataset Results/References_full_split_metrics_<DATASET>.csv``
with the fold parameters in ``results/References/Run Config/run_<DATASET>.json``; they
are recomputed when those parameters or the data file's content change.

Outputs (each written to a temporary name and renamed into place):
``results/comparison.csv``, ``results/comparison.md``, ``results/comparison.png`` and
``results/confusion_matrices.png``.

Units: scores in the CSVs (inputs and ``comparison.csv``'s ``*_mean`` / ``*_ci_low`` /
``*_ci_high``) are fractions in [0, 1]; ``mean_diff`` and ``metric_mean_diff`` are in
percentage points (multi-task minus single-task); ``comparison.md`` shows percent.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tuning import atomic
from tuning.errors import InputError
from tuning.results_tree import INDIVIDUAL, SCORES, natural_key
from tuning.stats import corrected_resampled_ttest, mean_ci

__all__ = [
    "SCORES",
    "COMPARISON_COLUMNS",
    "load_approaches",
    "pair_rows",
    "missing_notes",
    "compare",
    "run",
]

METRICS_MARK = "_full_split_metrics_"
REFERENCE_FOLDER = "References"
REFERENCE_FAMILY = "reference"
REFERENCE_PCA_SVM = "Reference PCA+SVM"
REFERENCE_LDA = "Reference LDA"
REFERENCE_APPROACHES = (REFERENCE_PCA_SVM, REFERENCE_LDA)

SINGLE, MULTI, REFERENCE = "single-task", "multi-task", "reference"
_KIND_ORDER = {SINGLE: 0, MULTI: 1, REFERENCE: 2}

# Only used to name approaches that have no results yet; discovery scans the tree.
KNOWN_APPROACHES = (
    "Classic FFN PyTorch", "Classic CNN PyTorch", "Classic LSTM PyTorch",
    "Feature Based MTL FFN", "Feature Based MTL CNN", "Feature Based MTL LSTM",
)

KEY = ["dataset", "repeat", "fold"]
_REQUIRED = ["dataset", "family", "repeat", "fold", "seed", "n_train", "n_val", "n_test", *SCORES]
_TAIL = ["epochs", "best_epoch", "train_seconds", "n_parameters", "node_id", "experiment"]
_STR_COLUMNS = {"dataset": str, "approach": str, "family": str, "node_id": str, "experiment": str}
# Run Config entries that fix the data and the folds.
FOLD_PARAMS = ("label_column", "folds", "repeats", "seed", "inner_val_fraction")

COMPARISON_COLUMNS = [
    "dataset", "approach", "kind", "n_folds",
    *[f"{s}_{part}" for s in SCORES for part in ("mean", "ci_low", "ci_high")],
    "vs_approach", "mean_diff", "t", "p_value", "verdict",
    "metric", "metric_vs_approach", "metric_mean_diff", "metric_t", "metric_p_value", "metric_verdict",
]
"""Columns of ``comparison.csv``: one row per (dataset, approach). ``vs_approach`` ...
``verdict`` compare a multi-task row with the best single-task approach on accuracy;
``metric_*`` do the same for ``metric`` (the ``--metric`` option; equal to the accuracy
columns when it is accuracy). Empty for single-task and reference rows."""

BETTER, WORSE, NO_DIFFERENCE = "better", "worse", "no detectable difference"


# ----------------------------------------------------------------------------- loading
def _kind(folder: str, family: str) -> str:
    if folder == REFERENCE_FOLDER or family == REFERENCE_FAMILY:
        return REFERENCE
    if folder.startswith("Feature Based MTL") or family.startswith("mtl-"):
        return MULTI
    return SINGLE


def _read_rows(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=_STR_COLUMNS)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=_REQUIRED)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: cannot be read as a results CSV ({str(exc).splitlines()[0]}); "
                         "re-export that approach") from None
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; it is not an Individual Dataset "
                         "Results file of this version; re-export that approach")
    return frame


def load_approaches(results_dir, include_references: bool = True) -> pd.DataFrame:
    """Every approach's per-fold rows from ``results_dir``.

    Scans ``results_dir/*/Individual Dataset Results/*_full_split_metrics_*.csv``.

    Returns:
        One DataFrame, one row per (approach, dataset, repeat, fold), with the file's
        columns (scores as fractions in [0, 1]) plus:
        ``approach`` (the folder name; for the References folder, the rows' own
        ``approach``), ``multitask`` (bool: folder starts with "Feature Based MTL" or
        family starts with "mtl-"), ``kind`` ("single-task", "multi-task" or "reference")
        and ``source_file`` (the CSV it came from). Empty (no rows) when nothing is found.

    Raises:
        InputError: ``results_dir`` is missing, a file is unreadable or lacks columns, or
            one approach has two rows for the same fold.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise InputError(f"{root}: results folder not found; pass --results-dir, or export results first")
    frames = []
    for path in sorted(root.glob(f"*/{INDIVIDUAL}/*{METRICS_MARK}*.csv")):
        folder = path.parent.parent.name
        if folder == REFERENCE_FOLDER and not include_references:
            continue
        frame = _read_rows(path)
        if frame.empty:
            continue
        frame = frame.copy()
        frame["family"] = frame["family"].fillna("").astype(str)
        if folder != REFERENCE_FOLDER or "approach" not in frame.columns:
            frame["approach"] = folder
        frame["kind"] = [_kind(folder, fam) for fam in frame["family"]]
        frame["multitask"] = frame["kind"] == MULTI
        frame["source_file"] = str(path)
        dup = frame.duplicated(["approach", *KEY])
        if dup.any():
            r = frame[dup].iloc[0]
            raise InputError(f"{path}: two rows for dataset {r['dataset']} repeat {r['repeat']} fold {r['fold']}; "
                             "re-export that approach")
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*_REQUIRED, "approach", "kind", "multitask", "source_file"])
    rows = pd.concat(frames, ignore_index=True)
    dup = rows.duplicated(["approach", *KEY])
    if dup.any():  # the same approach in two files (e.g. a renamed copy of a CSV)
        r = rows[dup].iloc[0]
        raise InputError(f"{r['approach']}: dataset {r['dataset']} repeat {r['repeat']} fold {r['fold']} "
                         f"appears in more than one file under {root}; remove the stale copy")
    for col in ("repeat", "fold", "seed", "n_train", "n_val", "n_test"):
        rows[col] = pd.to_numeric(rows[col], errors="coerce").astype("Int64")
    return rows


# ----------------------------------------------------------------------------- pairing
def _name(rows: pd.DataFrame, default: str) -> str:
    if "approach" in rows.columns and len(rows):
        return str(rows["approach"].iloc[0])
    return default


def _shape(rows: pd.DataFrame) -> tuple[int, int]:
    return int(rows["fold"].nunique()), int(rows["repeat"].nunique())


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def pair_rows(a_rows: pd.DataFrame, b_rows: pd.DataFrame) -> pd.DataFrame:
    """Join two approaches' per-fold rows on ``(dataset, repeat, fold)``.

    Datasets present on one side only are left out (the caller reports them as missing).
    For each dataset on both sides the fold keys, and each key's ``seed`` and ``n_test``,
    must agree: otherwise the two were scored on different folds and a paired comparison
    would be meaningless.

    Returns:
        The joined rows, ``KEY`` columns unsuffixed and every other column suffixed
        ``_a`` / ``_b``, sorted by ``(dataset, repeat, fold)``.

    Raises:
        InputError: one line naming both approaches, the dataset and what differs.
    """
    a_name, b_name = _name(a_rows, "first approach"), _name(b_rows, "second approach")
    common = sorted(set(a_rows["dataset"]) & set(b_rows["dataset"]), key=natural_key)
    pieces = []
    for dataset in common:
        a = a_rows[a_rows["dataset"] == dataset]
        b = b_rows[b_rows["dataset"] == dataset]
        where = f"cannot pair '{a_name}' with '{b_name}' on dataset {dataset}"
        keys_a = set(zip(a["repeat"].astype(int), a["fold"].astype(int)))
        keys_b = set(zip(b["repeat"].astype(int), b["fold"].astype(int)))
        if keys_a != keys_b:
            (fa, ra), (fb, rb) = _shape(a), _shape(b)
            if (fa, ra) != (fb, rb):
                raise InputError(
                    f"{where}: they were scored on different folds ('{a_name}' has {_plural(fa, 'fold')} x "
                    f"{_plural(ra, 'repeat')}, as exported with --folds {fa} --repeats {ra}; '{b_name}' has "
                    f"{_plural(fb, 'fold')} x {_plural(rb, 'repeat')}, as with --folds {fb} --repeats {rb}); "
                    "re-export both with the same --folds, --repeats and --seed")
            only_a, only_b = sorted(keys_a - keys_b), sorted(keys_b - keys_a)
            side, lacking, (r, f) = (a_name, b_name, only_a[0]) if only_a else (b_name, a_name, only_b[0])
            raise InputError(
                f"{where}: '{side}' has repeat {r} fold {f} but '{lacking}' does not "
                f"({len(only_a) + len(only_b)} unmatched fold(s)); re-export both with the same "
                "--folds, --repeats and --seed")
        merged = a.merge(b, on=KEY, suffixes=("_a", "_b"), validate="one_to_one")
        bad = merged[merged["seed_a"] != merged["seed_b"]]
        if len(bad):
            r = bad.iloc[0]
            base_a, base_b = int(r["seed_a"]) - int(r["repeat"]), int(r["seed_b"]) - int(r["repeat"])
            raise InputError(
                f"{where}: repeat {r['repeat']} used seed {r['seed_a']} in '{a_name}' but {r['seed_b']} in "
                f"'{b_name}' (exported with --seed {base_a} vs --seed {base_b}), so the folds differ; "
                "re-export both with the same --seed")
        bad = merged[merged["n_test_a"] != merged["n_test_b"]]
        if len(bad):
            r = bad.iloc[0]
            raise InputError(
                f"{where}: repeat {r['repeat']} fold {r['fold']} scored {r['n_test_a']} rows in '{a_name}' but "
                f"{r['n_test_b']} in '{b_name}', so the folds were drawn from different data; re-export both "
                "from the same dataset CSV with the same --folds, --repeats and --seed")
        pieces.append(merged.sort_values(["repeat", "fold"]))  # datasets are already in natural order
    if not pieces:
        return a_rows.iloc[0:0].merge(b_rows.iloc[0:0], on=KEY, suffixes=("_a", "_b"))
    return pd.concat(pieces, ignore_index=True)


# ----------------------------------------------------------------------------- statistics
def _verdict(mean_diff: float, p: float, alpha: float) -> str:
    if p is None or math.isnan(p) or p >= alpha or mean_diff == 0:
        return NO_DIFFERENCE
    return BETTER if mean_diff > 0 else WORSE


def _test(mtl: pd.DataFrame, single: pd.DataFrame, metric: str, alpha: float) -> dict:
    """MTL minus single-task on ``metric``, paired by fold; differences in percentage points."""
    paired = pair_rows(mtl, single)
    diffs = 100.0 * (paired[f"{metric}_a"].astype(float) - paired[f"{metric}_b"].astype(float))
    n_train = (paired["n_train_a"] + paired["n_val_a"]).astype(float)
    t, p = corrected_resampled_ttest(diffs.to_numpy(), n_train.to_numpy(), paired["n_test_a"].astype(float).to_numpy())
    mean_diff = float(diffs.mean())
    return {"vs_approach": _name(single, ""), "mean_diff": mean_diff, "t": t, "p_value": p,
            "verdict": _verdict(mean_diff, p, alpha), "n_pairs": int(len(paired))}


def _ordered_approaches(rows: pd.DataFrame) -> list[str]:
    kinds = rows.groupby("approach")["kind"].first()
    return sorted(kinds.index, key=lambda a: (_KIND_ORDER[kinds[a]], a))


def compare(rows: pd.DataFrame, metric: str = "accuracy", alpha: float = 0.05,
            confidence: float = 0.95) -> pd.DataFrame:
    """The comparison table (:data:`COMPARISON_COLUMNS`), one row per (dataset, approach).

    Per dataset: each approach's mean and ``confidence`` interval of every score
    (fractions); the best single-task approach (highest mean accuracy; for the
    ``metric_*`` columns, highest mean ``metric``) against each multi-task approach:
    mean paired difference in percentage points (MTL minus single-task), the corrected
    resampled t-test's t and p, and the verdict ("better"/"worse" when p < alpha, else
    "no detectable difference").

    Raises:
        InputError: mismatched folds between a multi-task and the single-task approach
            (from :func:`pair_rows`), or an unknown metric.
    """
    if metric not in SCORES:
        raise InputError(f"--metric {metric!r} is not a score in the results; use one of {', '.join(SCORES)}")
    out = []
    for dataset in sorted(rows["dataset"].unique(), key=natural_key):
        here = rows[rows["dataset"] == dataset]
        by_approach = {a: here[here["approach"] == a] for a in _ordered_approaches(here)}
        singles = [a for a, r in by_approach.items() if r["kind"].iloc[0] == SINGLE]

        def best_by(score: str) -> str | None:
            if not singles:
                return None
            return max(singles, key=lambda a: (by_approach[a][score].astype(float).mean(), a))

        best_acc, best_metric = best_by("accuracy"), best_by(metric)
        for approach, part in by_approach.items():
            row = {c: np.nan for c in COMPARISON_COLUMNS}
            kind = part["kind"].iloc[0]
            row.update(dataset=dataset, approach=approach, kind=kind, n_folds=int(len(part)), metric=metric)
            for score in SCORES:
                values = part[score].astype(float).dropna().to_numpy()
                m, lo, hi = mean_ci(values, confidence) if values.size else (np.nan, np.nan, np.nan)
                row.update({f"{score}_mean": m, f"{score}_ci_low": lo, f"{score}_ci_high": hi})
            if kind == MULTI and best_acc is not None:
                res = _test(part, by_approach[best_acc], "accuracy", alpha)
                row.update({k: res[k] for k in ("vs_approach", "mean_diff", "t", "p_value", "verdict")})
                res = _test(part, by_approach[best_metric], metric, alpha)
                row.update({f"metric_{k}": res[k] for k in ("vs_approach", "mean_diff", "t", "p_value", "verdict")})
            out.append(row)
    return pd.DataFrame(out, columns=COMPARISON_COLUMNS)


# ----------------------------------------------------------------------------- missing approaches
def missing_notes(rows: pd.DataFrame) -> list[str]:
    """Which approaches have no results yet: by kind, by name, and per dataset."""
    nets = rows[rows["kind"] != REFERENCE]
    notes = []
    kinds = set(nets["kind"])
    if MULTI not in kinds:
        notes.append("No multi-task results yet: there is nothing to test against the single-task "
                     "approaches; only their scores are shown.")
    if SINGLE not in kinds:
        notes.append("No single-task results yet: the multi-task approaches have nothing to be compared "
                     "with; only their scores are shown.")
    found = set(nets["approach"])
    absent = [a for a in KNOWN_APPROACHES if a not in found]
    if absent:
        notes.append("No results yet from: " + ", ".join(absent) + ".")
    for dataset in sorted(nets["dataset"].unique(), key=natural_key):
        lacking = sorted(found - set(nets[nets["dataset"] == dataset]["approach"]))
        if lacking:
            notes.append(f"{dataset}: no results yet from " + ", ".join(lacking) + ".")
    return notes


# ----------------------------------------------------------------------------- CLI
def run(args) -> int:
    from tuning.comparison_report import plot_comparison, plot_confusion_matrices, render_markdown

    """Compare, write the four outputs, print the markdown and the paths written; returns 0."""
    results_dir = Path(args.results_dir)
    metric = getattr(args, "metric", "accuracy")
    alpha = float(getattr(args, "alpha", 0.05))
    if not 0.0 < alpha < 1.0:
        raise InputError(f"--alpha must be between 0 and 1, got {alpha:g}")
    if metric not in SCORES:
        raise InputError(f"--metric {metric!r} is not a score in the results; use one of {', '.join(SCORES)}")
    rows = load_approaches(results_dir, include_references=False)
    if rows.empty:
        raise InputError(f"{results_dir}: no results to compare; expected <Approach>/{INDIVIDUAL}/"
                         f"<prefix>{METRICS_MARK}<DATASET>.csv files (written by the export after a tune run)")
    notes = missing_notes(rows)
    if not getattr(args, "no_references", False):
        from tuning.references import add_references  # it builds on this module
        rows, ref_notes = add_references(results_dir, rows, log=lambda m: print(m, file=sys.stderr))
        notes += ref_notes
    table = compare(rows, metric=metric, alpha=alpha)
    markdown = render_markdown(table, metric=metric, alpha=alpha, notes=notes)
    paths = {name: results_dir / name for name in
             ("comparison.csv", "comparison.md", "comparison.png", "confusion_matrices.png")}
    with atomic.atomic_path(paths["comparison.csv"]) as tmp:
        table.to_csv(tmp, index=False)
    atomic.write_text(paths["comparison.md"], markdown)
    plot_comparison(table, paths["comparison.png"])
    plot_confusion_matrices(rows, paths["confusion_matrices.png"])
    print(markdown)
    for path in paths.values():
        print(f"wrote {path}")
    return 0
