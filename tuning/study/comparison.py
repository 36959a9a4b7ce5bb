"""``python -m tuning compare``: does multi-task learning help, per dataset?

The entry of the comparison; it uses, beside it in ``tuning/study/``:

* :mod:`.tree_rows`: loading every approach's per-fold rows, validation and one-split scores
  from the results tree, and pairing two approaches fold by fold;
* :mod:`tuning.statistics`: the tests (corrected resampled t-test, Holm, Bayesian correlated
  t-test with a ROPE) and the verdicts;
* :mod:`.references`: scikit-learn reference models scored on the same folds;
* :mod:`.report`: the markdown and the plots.

Outputs (each written to a temporary name and renamed into place), in ``results/``:
``comparison.csv`` (one row per dataset and approach: scores with corrected intervals,
one-split and validation scores), ``comparison_tests.csv`` (one row per test),
``comparison.md``, ``comparison.png`` and ``confusion_matrices.png``.

Units: scores are fractions in [0, 1]; differences, their intervals and the ROPE are in
percentage points (multi-task minus single-task).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tuning import atomic
from tuning import statistics as st
from tuning.export import references as refs
from tuning.study import report, tree_rows
from tuning.study.tree_rows import (ENSEMBLE, KIND_ORDER, MULTI, REFERENCE, SCORES, SINGLE, load_approaches,
                                    pair_rows)
from tuning.statistics import (BETTER, DEFAULT_ALPHA, DEFAULT_ROPE, DEFAULT_THRESHOLD, EQUIVALENT, NO_DIFFERENCE,
                               WORSE, corrected_mean_ci)
from tuning.errors import InputError
from tuning.data.readers import natural_key
from tuning.export.results_tree import INDIVIDUAL, RUN_CONFIG

__all__ = ["compare", "paired_tests", "best_by_validation", "summarise", "add_references", "run",
           "run_comparison", "check_options",
           "load_approaches", "pair_rows", "paired_differences",
           "SUMMARY_COLUMNS", "TEST_COLUMNS", "BETTER", "WORSE", "EQUIVALENT", "NO_DIFFERENCE",
           "PRIMARY", "EXPLORATORY", "SINGLE", "MULTI", "ENSEMBLE", "REFERENCE", "KIND_ORDER"]

PRIMARY, EXPLORATORY = report.PRIMARY, report.EXPLORATORY

SUMMARY_COLUMNS = [
    "dataset", "approach", "kind", "family", "n_folds",
    *[f"{s}_{part}" for s in SCORES for part in ("mean", "ci_low", "ci_high")],
    *[f"one_split_{s}" for s in SCORES], "validation_objective", "validation_value",
]
"""Columns of ``comparison.csv``: per (dataset, approach), each score's full-split mean and
its fold-correlation-corrected interval, the one-split test scores and the validation score
the search recorded for the chosen configuration."""

TEST_COLUMNS = [
    "dataset", "comparison", "score", "approach", "vs_approach", "selected_by", "n_pairs",
    "mean_diff", "diff_ci_low", "diff_ci_high", "t", "p_value", "p_adjusted",
    "p_better", "p_equivalent", "p_worse", "verdict",
]
"""Columns of ``comparison_tests.csv``: one row per test. ``comparison`` is ``primary``
(MTL vs the single-task family with the same trunk) or ``exploratory`` (MTL vs the best
single-task family by validation score); ``p_adjusted`` is Holm's over the rows with the
same ``comparison`` and ``score``."""


# ----------------------------------------------------------------------------- tables
def _family(part: pd.DataFrame) -> str:
    return str(part["family"].iloc[0]) if "family" in part.columns and len(part) else ""


def paired_differences(paired: pd.DataFrame, score: str = "accuracy",
                       side: str = "a") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per fold of :func:`pair_rows`' output: A minus B in percentage points, and the rows
    fitted (training + inner validation: both shape the model) and scored, from ``side``'s
    rows; the arguments of :func:`tuning.statistics.paired_test`."""
    diffs = 100.0 * (paired[f"{score}_a"].astype(float) - paired[f"{score}_b"].astype(float)).to_numpy()
    n_train = (paired[f"n_train_{side}"] + paired[f"n_val_{side}"]).astype(float).to_numpy()
    return diffs, n_train, paired[f"n_test_{side}"].astype(float).to_numpy()


def summarise(rows: pd.DataFrame, validation: pd.DataFrame | None = None, one_split: pd.DataFrame | None = None,
              confidence: float = 0.95) -> pd.DataFrame:
    """The summary table (:data:`SUMMARY_COLUMNS`), one row per (dataset, approach)."""
    validation = validation if validation is not None else pd.DataFrame(columns=["approach", "dataset"])
    one_split = one_split if one_split is not None else pd.DataFrame(columns=["approach", "dataset"])
    val_by = validation.set_index(["approach", "dataset"]) if len(validation) else None
    one_by = one_split.set_index(["approach", "dataset"]) if len(one_split) else None
    out = []
    for dataset in sorted(rows["dataset"].unique(), key=natural_key):
        here = rows[rows["dataset"] == dataset]
        for approach in tree_rows.ordered_approaches(here):
            part = here[here["approach"] == approach]
            row = {c: np.nan for c in SUMMARY_COLUMNS}
            row.update(dataset=dataset, approach=approach, kind=part["kind"].iloc[0], family=_family(part),
                       n_folds=int(len(part)))
            n_train = (part["n_train"] + part["n_val"]).astype(float).to_numpy()
            n_test = part["n_test"].astype(float).to_numpy()
            for score in SCORES:
                values = part[score].astype(float).to_numpy()
                ok = np.isfinite(values)
                if ok.any():
                    m, lo, hi = corrected_mean_ci(values[ok], n_train[ok], n_test[ok], confidence)
                    lo, hi = max(lo, 0.0), min(hi, 1.0)  # a score lies in [0, 1]; few folds can overshoot
                    row.update({f"{score}_mean": m, f"{score}_ci_low": lo, f"{score}_ci_high": hi})
            key = (approach, dataset)
            if one_by is not None and key in one_by.index:
                one = one_by.loc[[key]].iloc[-1]
                row.update({f"one_split_{s}": float(one[s]) for s in SCORES if s in one.index})
            if val_by is not None and key in val_by.index:
                val = val_by.loc[[key]].iloc[-1]
                row.update(validation_objective=val["objective"], validation_value=float(val["objective_value"]))
            out.append(row)
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)


def best_by_validation(candidates, validation: pd.DataFrame | None, dataset: str) -> str | None:
    """Of the approach names ``candidates``, the one whose search recorded the best validation
    score on ``dataset`` (chosen without looking at any fold); None without comparable scores."""
    if validation is None or validation.empty:
        return None
    here = validation[(validation["dataset"] == dataset) & validation["approach"].isin(list(candidates))]
    here = here[np.isfinite(here["objective_value"].astype(float))]
    if here.empty or here["objective"].nunique() > 1:  # different objectives are not comparable
        return None
    sign = 1.0 if bool(here["higher_is_better"].iloc[0]) else -1.0
    ranked = sorted(zip(here["objective_value"].astype(float), here["approach"]), key=lambda t: (-sign * t[0], t[1]))
    return ranked[0][1]


def paired_tests(rows: pd.DataFrame, validation: pd.DataFrame | None = None, *, metric: str = "accuracy",
                 alpha: float = DEFAULT_ALPHA, rope: float = DEFAULT_ROPE, threshold: float = DEFAULT_THRESHOLD,
                 confidence: float = 0.95) -> tuple[pd.DataFrame, list[str]]:
    """Every test (:data:`TEST_COLUMNS`) and notes on the tests that could not be made.

    Raises:
        InputError: two approaches to be paired were scored on different folds.
    """
    scores = ["accuracy"] + ([metric] if metric != "accuracy" else [])
    records, notes = [], []
    for dataset in sorted(rows["dataset"].unique(), key=natural_key):
        here = rows[rows["dataset"] == dataset]
        by_approach = {a: here[here["approach"] == a] for a in tree_rows.ordered_approaches(here)}
        singles = {a: r for a, r in by_approach.items() if r["kind"].iloc[0] == SINGLE}
        multis = {a: r for a, r in by_approach.items() if r["kind"].iloc[0] == MULTI}
        best = best_by_validation(singles, validation, dataset)
        if multis and singles and best is None:
            notes.append(f"{dataset}: no exploratory test (no comparable validation scores in Best Performance "
                         "Results for its single-task approaches)")
        for approach, part in multis.items():
            trunk = tree_rows.trunk_of(_family(part))
            twin = next((a for a, r in singles.items() if _family(r) == trunk), None)
            if twin is None:
                notes.append(f"{dataset}: no primary test for {approach} (no single-task '{trunk}' results)")
            plan = [(PRIMARY, twin, f"same trunk ({trunk})")] if twin else []
            if best is not None:
                plan.append((EXPLORATORY, best, "best validation score"))
            for comparison, vs, selected_by in plan:
                paired = pair_rows(part, by_approach[vs])
                for score in scores:
                    result = st.paired_test(*paired_differences(paired, score), rope=rope, confidence=confidence)
                    records.append({"dataset": dataset, "comparison": comparison, "score": score,
                                    "approach": approach, "vs_approach": vs, "selected_by": selected_by,
                                    **result})
    tests = pd.DataFrame(records, columns=[c for c in TEST_COLUMNS if c not in ("p_adjusted", "verdict")])
    tests = st.adjust(tests, ["comparison", "score"], alpha=alpha, threshold=threshold)
    return tests[TEST_COLUMNS], notes


def compare(rows: pd.DataFrame, validation: pd.DataFrame | None = None, one_split: pd.DataFrame | None = None, *,
            metric: str = "accuracy", alpha: float = DEFAULT_ALPHA, rope: float = DEFAULT_ROPE,
            threshold: float = DEFAULT_THRESHOLD, confidence: float = 0.95):
    """``(summary, tests, notes)``: :func:`summarise` and :func:`paired_tests` on ``rows``."""
    if metric not in SCORES:
        raise InputError(f"--metric {metric!r} is not a score in the results; use one of {', '.join(SCORES)}")
    summary = summarise(rows, validation, one_split, confidence)
    tests, notes = paired_tests(rows, validation, metric=metric, alpha=alpha, rope=rope, threshold=threshold,
                                confidence=confidence)
    return summary, tests, notes


# ----------------------------------------------------------------------------- learning curves
# ----------------------------------------------------------------------------- references
def _pairs_with(ref: pd.DataFrame, approach_rows: pd.DataFrame) -> str | None:
    """None if every reference approach pairs with ``approach_rows``, else the reason."""
    for name in refs.REFERENCE_APPROACHES:
        part = ref[ref["approach"] == name]
        if part.empty:
            return f"the cache lacks '{name}'"
        try:
            pair_rows(part, approach_rows)
        except InputError as err:
            return str(err)
    return None


def load_or_compute_references(results_dir, dataset: str, approach_rows: pd.DataFrame, run_config_path,
                               log=print) -> tuple[pd.DataFrame | None, str | None]:
    """Reference rows for one dataset, from the cache or computed on the Run Config's folds.

    Returns ``(rows, None)``, or ``(None, reason)`` when they cannot be had (no Run Config,
    data file gone, folds that do not match ``approach_rows``).
    """
    results_dir, run_config_path = Path(results_dir), Path(run_config_path)
    config = refs.read_json(run_config_path)
    if config is None or "path" not in config:
        return None, f"no readable {run_config_path} with a data path"
    params = refs.fold_params(config)
    data_path = Path(str(config["path"])).expanduser()
    digest = refs.sha256(data_path)
    cache_csv, cache_json = refs.cache_paths(results_dir, dataset)
    cached = refs.read_json(cache_json)
    if cached is not None and cache_csv.is_file() and refs.fold_params(cached) == params \
            and (digest is None or cached.get("data_sha256") == digest):
        try:
            rows = tree_rows.read_rows(cache_csv)
        except InputError:
            rows = None
        if rows is not None and not rows.empty and _pairs_with(rows, approach_rows) is None:
            return rows, None
    if digest is None:
        return None, f"data file {data_path} (from {run_config_path}) is not readable here"
    try:
        data, folds = refs.rebuild_folds(config, run_config_path, dataset)
    except InputError as err:
        return None, str(err)
    log(f"computing reference rows for {dataset} (PCA+SVM, LDA and a tuned SVM on {len(folds)} folds)...")
    rows = refs.reference_rows(data.X, data.y, data.n_classes, folds, dataset)
    reason = _pairs_with(rows, approach_rows)
    if reason is not None:
        return None, reason
    with atomic.atomic_path(cache_csv) as tmp:
        rows.to_csv(tmp, index=False)
    atomic.write_text(cache_json, json.dumps(refs.cache_record(dataset, data_path, params, digest), indent=2))
    return tree_rows.read_rows(cache_csv), None  # the same dtypes as a cache hit


def add_references(results_dir, rows: pd.DataFrame, log=print) -> tuple[pd.DataFrame, list[str]]:
    """``rows`` plus reference rows for every dataset that has a usable Run Config.

    The Run Config is taken from a single-task approach if the dataset has one (in name
    order), else from the first other approach that does. Returns the rows and notes on
    datasets without references.
    """
    results_dir = Path(results_dir)
    nets = rows[rows["kind"] != REFERENCE]
    extra, notes = [], []
    for dataset in sorted(nets["dataset"].unique(), key=natural_key):
        here = nets[nets["dataset"] == dataset]
        chosen = None
        for approach in tree_rows.ordered_approaches(here):
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
        ref["family"] = tree_rows.REFERENCE_FAMILY
        ref["kind"] = REFERENCE
        ref["multitask"] = False
        ref["source_file"] = str(refs.cache_paths(results_dir, dataset)[0])
        extra.append(ref)
    if extra:
        rows = pd.concat([rows, *extra], ignore_index=True)
        for col in ("repeat", "fold", "seed", "n_train", "n_val", "n_test"):
            rows[col] = pd.to_numeric(rows[col], errors="coerce").astype("Int64")
    return rows, notes


# ----------------------------------------------------------------------------- the command
def check_options(alpha: float, rope: float, threshold: float, metric: str = "accuracy") -> None:
    if not 0.0 < alpha < 1.0:
        raise InputError(f"--alpha must be between 0 and 1, got {alpha:g}")
    if not 0.0 <= rope < 100.0:
        raise InputError(f"--rope is in accuracy points and must be in [0, 100), got {rope:g}")
    if not 0.5 < threshold < 1.0:
        raise InputError(f"--threshold must be between 0.5 and 1, got {threshold:g}")
    if metric not in SCORES:
        raise InputError(f"--metric {metric!r} is not a score in the results; use one of {', '.join(SCORES)}")


def run_comparison(results_dir, *, metric: str = "accuracy", alpha: float = DEFAULT_ALPHA,
                   rope: float = DEFAULT_ROPE, threshold: float = DEFAULT_THRESHOLD, references: bool = True,
                   quiet: bool = False) -> dict:
    """Compare, write the outputs; returns the tables, the markdown and the paths written."""
    check_options(alpha, rope, threshold, metric)
    results_dir = Path(results_dir)
    rows = load_approaches(results_dir, include_references=False)
    if rows.empty:
        raise InputError(f"{results_dir}: no results to compare; expected <Approach>/{INDIVIDUAL}/"
                         f"<prefix>{tree_rows.METRICS_MARK}<DATASET>.csv files (written by the export after a "
                         "tune run)")
    notes = tree_rows.missing_notes(rows)
    if references:
        rows, ref_notes = add_references(results_dir, rows, log=lambda m: print(m, file=sys.stderr))
        notes += ref_notes
    summary, tests, test_notes = compare(rows, tree_rows.load_validation_scores(results_dir),
                                         tree_rows.load_one_split(results_dir), metric=metric, alpha=alpha,
                                         rope=rope, threshold=threshold)
    notes += test_notes
    order = tree_rows.ordered_approaches(rows)
    markdown = report.render_markdown(summary, tests, order, metric=metric, alpha=alpha, rope=rope,
                                      threshold=threshold, notes=notes)
    paths = {name: results_dir / name for name in ("comparison.csv", "comparison_tests.csv", "comparison.md",
                                                   "comparison.png", "confusion_matrices.png")}
    atomic.write_text(paths["comparison.csv"], summary.to_csv(index=False))
    atomic.write_text(paths["comparison_tests.csv"], tests.to_csv(index=False))
    atomic.write_text(paths["comparison.md"], markdown)
    report.plot_comparison(summary, order, paths["comparison.png"])
    nets = rows[rows["kind"] != REFERENCE]
    net_order = tree_rows.ordered_approaches(nets)
    datasets = sorted(nets["dataset"].unique(), key=natural_key)
    matrices = {(a, d): tree_rows.load_confusion(nets, a, d) for a in net_order for d in datasets
                if ((nets["approach"] == a) & (nets["dataset"] == d)).any()}
    report.plot_confusion_matrices(matrices, datasets, net_order, paths["confusion_matrices.png"])
    if not quiet:
        print(markdown)
        for path in paths.values():
            print(f"wrote {path}")
    return {"summary": summary, "tests": tests, "notes": notes, "order": order, "markdown": markdown,
            "paths": paths}


def run(args) -> int:
    """``python -m tuning compare``: compare, write the outputs, print the markdown; returns 0."""
    run_comparison(args.results_dir, metric=getattr(args, "metric", "accuracy"),
                   alpha=float(getattr(args, "alpha", DEFAULT_ALPHA)), rope=float(getattr(args, "rope", DEFAULT_ROPE)),
                   threshold=float(getattr(args, "threshold", DEFAULT_THRESHOLD)),
                   references=not getattr(args, "no_references", False))
    return 0
