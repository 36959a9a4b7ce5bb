"""Racing the top configurations of a search (intensification, as in SMAC) before the export.

A search ranks its trials on one validation part of a few hundred rows, so its best trial is
partly the luckiest. Racing trains each of the top ``k`` configurations (the search's ranking,
:func:`tuning.export.exporter.ranked_trials`) once more on each of ``folds`` extra folds of the
tuning split's training and validation rows, and picks the configuration with the best mean
score over those folds; ties go to the search's own order. The tuning split's test rows, and
so the one-split rerun's scores, stay unseen by the race. Every run is one
:func:`tuning.export.reruns.run_job` (the trials' training loop, early stopping on an inner
validation part of its own training rows), all ``k x folds`` submitted to Ray at once.

Cost: ``k x folds`` trainings of up to ``max_epochs`` epochs, as many as the full-split
reruns of a ``k x folds``-fold export. Whether it picks better than the search's own rule
is measured in ``benchmarks/racing.py`` (``benchmarks/RESULTS.md``, section ``racing``);
``tune --race K`` turns it on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from tuning.data.readers import Dataset
from tuning.data.splits import cv_folds, tuning_split
from tuning.errors import InputError
from tuning.export.reruns import RerunJob, run_config_jobs
from tuning.metrics import SCORES

RACE = "race"
RACE_FOLDS = 3
RACE_SEED_OFFSET = 7919  # the race's folds are drawn apart from the full split's (seed, seed + 1, ...)


@dataclass(frozen=True)
class RaceResult:
    winner: int                      # index into the candidates
    scores: list[float]              # each candidate's mean score over the race folds (fractions)
    per_fold: list[list[float]]      # candidate -> fold -> score (mean over datasets)
    metric: str                      # the score raced on
    epochs: int                      # epochs trained by the whole race (each run's first row: a multi-task
                                     # network once; an ft-* run, its first dataset's network)
    train_seconds: float             # training seconds of the whole race (summed over its runs)


def race_jobs(datasets: Sequence[Dataset], *, seed: int, folds: int, val_fraction: float,
              test_fraction: float, inner_val_fraction: float) -> list[RerunJob]:
    """``folds`` stratified folds of each dataset's tuning training + validation rows; the
    tuning split's test rows are in none of them. A multi-task job holds fold ``f`` of every
    dataset."""
    per_dataset = []
    for dataset in datasets:
        split = tuning_split(dataset.y, seed, val_fraction, test_fraction)
        pool = np.sort(np.concatenate([split.train, split.val]))
        try:
            drawn = cv_folds(dataset.y[pool], folds, 1, seed + RACE_SEED_OFFSET, inner_val_fraction)
        except ValueError as error:
            raise InputError(f"{dataset.path}: too few rows to race on {folds} folds ({error}); "
                             "race fewer folds or none") from None
        per_dataset.append([(f.fold, f.seed, pool[f.train], pool[f.val], pool[f.test]) for f in drawn])
    return [RerunJob(RACE, 0, group[0][0], group[0][1], tuple(g[2] for g in group), tuple(g[3] for g in group),
                     tuple(g[4] for g in group))
            for group in zip(*per_dataset)]


def race_metric(metric: str) -> str:
    """The score a race compares: the search's objective, or accuracy for a loss objective."""
    return metric if metric in SCORES else "accuracy"


def race(family: str, candidates: Sequence[dict], datasets: Sequence[Dataset], jobs: Sequence[RerunJob], *,
         max_epochs: int, patience: int, metric: str, cpus: float = 1.0, gpus: float = 0.0,
         progress: bool = True) -> RaceResult:
    """Train every candidate configuration on every job and pick the best mean score."""
    if not candidates:
        raise ValueError("race needs at least one candidate configuration")
    scored = race_metric(metric)
    work = [(config, job) for config in candidates for job in jobs]
    rows = run_config_jobs(family, work, datasets, max_epochs=max_epochs, patience=patience, metric=metric,
                           cpus=cpus, gpus=gpus, progress=progress, desc="race")
    per_fold = [[float(np.mean([r[scored] for r in rows[c * len(jobs) + j]])) for j in range(len(jobs))]
                for c in range(len(candidates))]
    scores = [float(np.mean(folds)) for folds in per_fold]
    winner = int(np.argmax(scores))  # first of equals: the search's own order breaks ties
    return RaceResult(winner, scores, per_fold, scored,
                      epochs=sum(int(r["epochs"]) for run in rows for r in run[:1]),
                      train_seconds=float(sum(r["train_seconds"] for run in rows for r in run[:1])))
