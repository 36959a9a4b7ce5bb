"""Train any family: the call every Tune trial, rerun, bundle and calibration makes.

A single-task or multi-task family is one run of the loop
(:func:`tuning.training_loop.fit_one_run`); an ``ft-*`` family is two
(:func:`tuning.finetune.fit_two_stages`: the multi-task net, then one fine-tuned copy per
dataset), unless ``warm_start`` gives the network to continue from. The choice lives here so
that the loop and the two stages both sit below it and neither imports the other's caller.
The loop's data types are handed on for the callers' convenience.
"""

from __future__ import annotations

from typing import Callable, Sequence

import models
from tuning.finetune import fit_two_stages
from tuning.training_loop import (FitResult, TaskData, WarmStart, common_channels, common_length, fit_one_run,
                                  predict_labels)

__all__ = ["FitResult", "TaskData", "WarmStart", "common_channels", "common_length", "fit", "predict_labels"]


def fit(
    family: str,
    config: dict,
    tasks: Sequence[TaskData],
    *,
    max_epochs: int,
    seed: int,
    metric: str = "accuracy",
    patience: int | None = None,
    device: str = "cpu",
    on_epoch: Callable[[int, dict, Callable[[], dict]], None] | None = None,
    resume_state: dict | None = None,
    warm_start: WarmStart | None = None,
) -> FitResult:
    """Train ``family`` with hyperparameters ``config`` on ``tasks``; arguments and result as
    :func:`tuning.training_loop.fit_one_run` (for an ``ft-*`` family ``max_epochs`` covers both
    stages, and ``resume_state`` is the stage-aware checkpoint its trials write)."""
    if models.is_finetuned(family) and warm_start is None:
        return fit_two_stages(family, config, tasks, max_epochs=max_epochs, seed=seed, metric=metric,
                              patience=patience, device=device, on_epoch=on_epoch, resume_state=resume_state)
    return fit_one_run(family, config, tasks, max_epochs=max_epochs, seed=seed, metric=metric, patience=patience,
                       device=device, on_epoch=on_epoch, resume_state=resume_state, warm_start=warm_start)
