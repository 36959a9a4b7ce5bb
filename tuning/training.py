"""Train any family: the call every Tune trial, rerun, bundle and calibration makes.

A single-task or multi-task family is one run of the loop
(:func:`tuning.training_loop.fit_one_run`); an ``ft-*`` family is two
(:func:`tuning.finetune.fit_two_stages`: the multi-task net, then one fine-tuned copy per
dataset), unless ``warm_start`` gives the network to continue from. The choice lives here so
that the loop and the two stages both sit below it and neither imports the other's caller.
The loop's data types are handed on for the callers' convenience.
"""

from __future__ import annotations

from typing import Sequence

import models
from tuning.finetune import fit_two_stages
from tuning.training_loop import (FitResult, TaskData, WarmStart, common_channels, common_length, fit_one_run,
                                  predict_labels)

__all__ = ["FitResult", "TaskData", "WarmStart", "common_channels", "common_length", "fit", "predict_labels"]


def fit(family: str, config: dict, tasks: Sequence[TaskData], *, warm_start: WarmStart | None = None,
        **loop_options) -> FitResult:
    """Train ``family`` with hyperparameters ``config`` on ``tasks``. ``loop_options`` and the
    result are :func:`tuning.training_loop.fit_one_run`'s (``max_epochs``, ``seed``, ``metric``,
    ``patience``, ``device``, ``on_epoch``, ``resume_state``); for an ``ft-*`` family
    ``max_epochs`` covers both stages and ``resume_state`` is the stage-aware checkpoint its
    trials write."""
    if models.is_finetuned(family) and warm_start is None:
        return fit_two_stages(family, config, tasks, **loop_options)
    return fit_one_run(family, config, tasks, warm_start=warm_start, **loop_options)
