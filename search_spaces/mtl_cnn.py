"""Search space of the "mtl-cnn" family: the cnn trunk space, shared by all tasks, plus
the multi-task options and the training options."""

from __future__ import annotations

from typing import Sequence

import optuna

from . import cnn
from .common import suggest_multitask, suggest_training

FAMILY = "mtl-cnn"


def define(trial: optuna.Trial, task_names: Sequence[str]) -> dict:
    """Define-by-run space over tasks ``task_names`` (dataset names, in head order);
    returns the constants to merge into the config."""
    cnn.suggest_trunk(trial)
    suggest_multitask(trial, task_names)
    suggest_training(trial)
    return {"family": FAMILY}
