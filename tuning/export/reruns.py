"""Reruns of a chosen configuration on held-out data: the one tuning split and the full
k-fold x repeats splits, each a Ray task so they run in parallel and spread over a cluster.

A rerun trains with :func:`tuning.training.fit` (the loop the trials use), stops early on
a validation part carved from its training rows only, and scores rows it never saw.
A multi-task rerun trains one network on fold ``(repeat, fold)`` of every dataset at once;
the folds of each dataset come from ``cv_folds`` on that dataset alone, so they are the
folds its single-task rerun used. A fine-tuned (ft-*) rerun redoes both stages on the fold:
the multi-task net on every dataset's training rows, then each dataset's copy on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import ray
import torch

import models
from tuning.data.readers import Dataset
from tuning.metrics import classification_metrics
from tuning.data.splits import cv_folds, tuning_split
from tuning.search.trainable import torch_threads, trial_device
from tuning.export.ensemble import average_proba, fit_members
from tuning.training import TaskData

ONE_SPLIT = "one_split"
FULL_SPLIT = "full_split"


@dataclass(frozen=True)
class RerunJob:
    """One training run: row indices per dataset (same order as the datasets)."""

    kind: str
    repeat: int
    fold: int
    seed: int
    train: tuple[np.ndarray, ...]
    val: tuple[np.ndarray, ...]
    test: tuple[np.ndarray, ...]


def plan_jobs(datasets: Sequence[Dataset], *, seed: int, folds: int, repeats: int,
              val_fraction: float, test_fraction: float, inner_val_fraction: float) -> list[RerunJob]:
    """The one-split job (the tuning split) followed by every full-split fold, in order."""
    splits = [tuning_split(d.y, seed, val_fraction, test_fraction) for d in datasets]
    jobs = [RerunJob(ONE_SPLIT, 0, 0, seed, tuple(s.train for s in splits),
                     tuple(s.val for s in splits), tuple(s.test for s in splits))]
    per_dataset = [cv_folds(d.y, folds, repeats, seed, inner_val_fraction) for d in datasets]
    for fold_group in zip(*per_dataset):
        first = fold_group[0]
        jobs.append(RerunJob(FULL_SPLIT, first.repeat, first.fold, first.seed,
                             tuple(f.train for f in fold_group), tuple(f.val for f in fold_group),
                             tuple(f.test for f in fold_group)))
    return jobs


def run_job(family: str, config: dict, datasets: Sequence[Dataset], job: RerunJob, *,
            max_epochs: int, patience: int, metric: str = "accuracy", threads: int = 1,
            members: Sequence[dict] = ()) -> list[dict]:
    """Train on ``job``'s rows and score each dataset's test rows; one result row per dataset.

    Each row holds the metrics (fractions), the confusion matrix (list of lists), epochs run,
    the best epoch, training seconds, the parameter count and the Ray node that ran it.
    ``members``: further configurations trained on the same rows and seed; then each dataset
    gets a second row (``ensemble`` True) scoring the average of every network's class
    probabilities (``config``'s and the members'), whose epochs, seconds and parameters are
    the networks' sums and whose best epoch is ``config``'s.
    """
    torch.set_num_threads(threads)
    tasks = [TaskData.from_rows(d, tr, va) for d, tr, va in zip(datasets, job.train, job.val)]
    fits = fit_members(family, [config, *members], tasks, max_epochs=max_epochs, seed=job.seed, metric=metric,
                       patience=patience, device=_device())
    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
    rows = []
    for task_index, (dataset, test) in enumerate(zip(datasets, job.test)):
        scored = [(False, fits[:1], fits[0].predict_proba(dataset.X[test], task_index))]
        if members:
            scored.append((True, fits, average_proba(fits, dataset.X[test], task_index)))
        for ensemble, networks, proba in scored:
            networks = [f.task_view(task_index) for f in networks]  # ft-*: this dataset's own network
            scores = classification_metrics(dataset.y[test], proba.argmax(1), dataset.n_classes)
            rows.append({
                "kind": job.kind, "ensemble": ensemble, "dataset": dataset.name, "repeat": job.repeat,
                "fold": job.fold, "seed": job.seed, "n_train": int(len(job.train[task_index])),
                "n_val": int(len(job.val[task_index])), "n_test": int(len(test)),
                **scores, "epochs": sum(f.epochs_run for f in networks), "best_epoch": networks[0].best_epoch,
                "train_seconds": round(sum(f.train_seconds for f in networks), 3),
                "n_parameters": sum(models.count_parameters(f.model) for f in networks),
                "node_id": node,
            })
    return rows


def run_jobs(family: str, config: dict, datasets: Sequence[Dataset], jobs: Sequence[RerunJob], *,
             max_epochs: int, patience: int, metric: str = "accuracy", cpus: float = 1.0,
             gpus: float = 0.0, progress: bool = True, members: Sequence[dict] = ()) -> list[dict]:
    """Every job as a Ray task (``cpus``/``gpus`` each, as a trial); rows in job order.
    ``members``: as for :func:`run_job` (an ensemble scored beside ``config``)."""
    per_job = run_config_jobs(family, [(config, job) for job in jobs], datasets, max_epochs=max_epochs,
                              patience=patience, metric=metric, cpus=cpus, gpus=gpus, progress=progress,
                              members=members)
    return [row for rows in per_job for row in rows]


def run_config_jobs(family: str, work: Sequence[tuple[dict, RerunJob]], datasets: Sequence[Dataset], *,
                    max_epochs: int, patience: int, metric: str = "accuracy", cpus: float = 1.0,
                    gpus: float = 0.0, progress: bool = True, members: Sequence[dict] = (),
                    desc: str = "reruns") -> list[list[dict]]:
    """Each ``(config, job)`` of ``work`` as one Ray task, all submitted at once (so several
    configurations' jobs share the cores); each one's rows (:func:`run_job`), in ``work``'s order."""
    remote = ray.remote(num_cpus=cpus, num_gpus=gpus)(run_job)
    datasets_ref = ray.put(list(datasets))  # shipped once, not once per task
    pending = {remote.remote(family, config, datasets_ref, job, max_epochs=max_epochs,
                             patience=patience, metric=metric, threads=torch_threads(cpus),
                             members=list(members)): i
               for i, (config, job) in enumerate(work)}
    results: dict[int, list[dict]] = {}
    bar = _progress(len(work), enabled=progress, desc=desc)
    waiting = list(pending)
    while waiting:
        done, waiting = ray.wait(waiting, num_returns=1)
        for ref in done:
            results[pending[ref]] = ray.get(ref)
            bar.update(1)
    bar.close()
    return [results[i] for i in range(len(work))]


def _device() -> str:
    return trial_device() if ray.is_initialized() else ("cuda" if torch.cuda.is_available() else "cpu")


def _progress(total: int, enabled: bool, desc: str = "reruns"):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="run", disable=not enabled)
