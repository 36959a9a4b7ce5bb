"""Learning curves: a chosen configuration retrained on a fraction of each training fold.

Same folds as the full-split reruns (``cv_folds`` with the export's seed, folds, repeats
and inner validation fraction), same scored test rows, same inner validation rule: the
fold's training rows and its inner validation rows are each subsampled to ``fraction``,
stratified by class (at least one row per class), so validation stays the same share of
what is left. Subsets are **nested**: per fold and class one seeded permutation orders
the rows and a fraction takes a prefix of it, so the 10% rows lie inside the 25% rows,
and so on. The reruns are :func:`tuning.export.reruns.run_jobs` Ray tasks training with
:func:`tuning.training.fit`, the one training loop. At 100% the curve reuses the
exported full-split rows: they are that very run.

Rows are written to ``results/Learning Curves/learning_curves.csv`` (one row per
approach, dataset, fraction, repeat and fold; scores as fractions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from models import is_multitask
from tuning import atomic
from tuning.errors import InputError
from tuning.metrics import SCORES
from tuning.export.results_tree import INDIVIDUAL, RUN_CONFIG, approach_names

FRACTIONS = (0.1, 0.25, 0.5, 1.0)
FOLDER = "Learning Curves"
CSV_NAME = "learning_curves.csv"
CURVE_KIND = "learning_curve"
COLUMNS = ["dataset", "approach", "family", "fraction", "repeat", "fold", "seed", "n_train", "n_val", "n_test",
           *SCORES, "epochs", "best_epoch", "train_seconds", "experiment"]


def nested_subset(y: np.ndarray, rows: np.ndarray, fraction: float, seed: Sequence[int]) -> np.ndarray:
    """A stratified subset of ``rows`` holding ``fraction`` of each class, nested across fractions.

    Args:
        y: int array ``(n_rows,)`` of class ids of the whole dataset.
        rows: int64 indices into ``y`` (e.g. one fold's training rows).
        fraction: in (0, 1]; per class ``max(1, round(n_c * fraction))`` rows are kept.
        seed: seeds the per-class order; the same seed gives nested subsets for any
            two fractions (a prefix of one permutation).

    Returns:
        Sorted int64 indices, a subset of ``rows``.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    rows = np.asarray(rows, dtype=np.int64)
    rng = np.random.default_rng(list(seed))
    kept = []
    for c in np.unique(y[rows]):  # sorted: the draw order, hence the subset, is fixed
        members = np.sort(rows[y[rows] == c])
        members = members[rng.permutation(members.size)]
        take = max(1, int(np.floor(members.size * fraction + 0.5)))
        kept.append(members[:take])
    return np.sort(np.concatenate(kept)).astype(np.int64) if kept else rows[:0]


def curve_jobs(datasets, *, seed: int, folds: int, repeats: int, inner_val_fraction: float,
               fractions: Sequence[float]):
    """Rerun jobs for every fraction below 1 and every fold, in (fraction, repeat, fold) order.

    Each job's ``kind`` is ``"learning_curve:<fraction>"``; train and validation rows of
    each dataset are :func:`nested_subset` of the fold's own, seeded by the fold.
    """
    from tuning.export.reruns import RerunJob
    from tuning.data.splits import cv_folds

    per_dataset = [cv_folds(d.y, folds, repeats, seed, inner_val_fraction) for d in datasets]
    jobs = []
    for fraction in fractions:
        if fraction >= 1.0:
            continue
        for group in zip(*per_dataset):
            first = group[0]
            train = tuple(nested_subset(d.y, f.train, fraction, (f.seed, f.fold, 0)) for d, f in zip(datasets, group))
            val = tuple(nested_subset(d.y, f.val, fraction, (f.seed, f.fold, 1)) for d, f in zip(datasets, group))
            jobs.append(RerunJob(f"{CURVE_KIND}:{fraction:g}", first.repeat, first.fold, first.seed, train, val,
                                 tuple(f.test for f in group)))
    return jobs


def _read_json(path: Path) -> dict:
    import json

    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot be read ({err}); re-export that approach") from None


def exported_run(results_dir, family: str, dataset: str) -> dict:
    """The Run Config the export wrote for ``family`` on ``dataset`` (config, folds, experiment)."""
    approach, _ = approach_names(family)
    path = Path(results_dir) / approach / RUN_CONFIG / f"run_{dataset}.json"
    if not path.is_file():
        raise InputError(f"{path}: missing; export {family} on {dataset} before its learning curve")
    return _read_json(path)


def _full_split_rows(results_dir, family: str, datasets: Sequence[str], experiment: str) -> list[dict]:
    approach, prefix = approach_names(family)
    out = []
    for name in datasets:
        path = Path(results_dir) / approach / INDIVIDUAL / f"{prefix}_full_split_metrics_{name}.csv"
        frame = pd.read_csv(path, dtype={"dataset": str, "experiment": str})
        frame = frame[frame["dataset"] == name]
        for record in frame.to_dict("records"):
            record.update(fraction=1.0, approach=approach, family=family, experiment=experiment)
            out.append(record)
    return out


def compute_curve(results_dir, family: str, datasets: Sequence[str], fractions: Sequence[float] = FRACTIONS, *,
                  progress: bool = False) -> pd.DataFrame:
    """Learning-curve rows (:data:`COLUMNS`) of ``family``'s exported configuration.

    ``datasets``: the datasets to keep rows for (a multi-task family always trains on
    every dataset of its experiment, as it was tuned). Ray must be connected.
    """
    from tuning.search.run_record import read_run_record
    from tuning.export.exporter import reload_datasets, rerun_patience
    from tuning.export.reruns import run_jobs
    from tuning.data.splits import min_rows_per_class

    if len(datasets) > 1 and not is_multitask(family):  # each dataset has its own experiment
        raise ValueError(f"a single-task curve is one dataset's; got {', '.join(datasets)} for {family}")
    run = exported_run(results_dir, family, datasets[0])
    record = read_run_record(run["experiment"])
    settings = record["settings"]
    data = reload_datasets(record, min_rows_per_class(int(run["folds"])))
    jobs = curve_jobs(data, seed=int(run["seed"]), folds=int(run["folds"]), repeats=int(run["repeats"]),
                      inner_val_fraction=float(run["inner_val_fraction"]), fractions=fractions)
    config = run["best_trial"]["config"]
    rows = run_jobs(family, config, data, jobs, max_epochs=int(run["max_epochs"]),
                    patience=rerun_patience(int(run["max_epochs"])), metric=settings["metric"],
                    cpus=settings["cpus_per_trial"], gpus=settings["gpus_per_trial"], progress=progress) if jobs else []
    approach, _ = approach_names(family)
    experiment = Path(str(run["experiment"])).name
    for row in rows:
        row.update(fraction=float(row["kind"].split(":", 1)[1]), approach=approach, family=family,
                   experiment=experiment)
    if any(f >= 1.0 for f in fractions):
        rows += _full_split_rows(results_dir, family, [d.name for d in data], experiment)
    frame = pd.DataFrame(rows)
    frame = frame[frame["dataset"].isin(list(datasets))]
    return frame.reindex(columns=COLUMNS).sort_values(["dataset", "fraction", "repeat", "fold"], ignore_index=True)


def curve_path(results_dir) -> Path:
    return Path(results_dir) / FOLDER / CSV_NAME


def read_curves(results_dir) -> pd.DataFrame:
    path = curve_path(results_dir)
    if not path.is_file():
        return pd.DataFrame(columns=COLUMNS)
    return pd.read_csv(path, dtype={"dataset": str, "experiment": str})


def has_curve(existing: pd.DataFrame, family: str, datasets: Sequence[str], experiment: str,
              fractions: Sequence[float]) -> bool:
    """Whether ``existing`` already holds this family's curve from this experiment."""
    approach, _ = approach_names(family)
    mine = existing[(existing["approach"] == approach) & (existing["experiment"].astype(str) == experiment)]
    have = {(d, round(float(f), 6)) for d, f in zip(mine["dataset"], mine["fraction"])}
    return all((d, round(float(f), 6)) in have for d in datasets for f in fractions)


def write_curves(results_dir, existing: pd.DataFrame, new: pd.DataFrame) -> Path:
    """Replace the rows of ``new``'s (approach, dataset) pairs in the curve file, keep the rest."""
    if len(new):
        replaced = set(zip(new["approach"], new["dataset"]))
        keep = ~pd.Series([(a, d) in replaced for a, d in zip(existing["approach"], existing["dataset"])],
                          index=existing.index, dtype=bool)
        existing = pd.concat([existing[keep], new], ignore_index=True)
    path = curve_path(results_dir)
    atomic.write_text(path, existing.reindex(columns=COLUMNS).to_csv(index=False))
    return path
