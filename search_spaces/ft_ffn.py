"""Search space of the "ft-ffn" family: stage 1 is the "mtl-ffn" space (the ffn trunk,
the multi-task and the training options), stage 2 the fine-tuning options."""

from __future__ import annotations

from typing import Sequence

import optuna

from . import mtl_ffn
from .common import suggest_finetuning

FAMILY = "ft-ffn"


def define(trial: optuna.Trial, task_names: Sequence[str]) -> dict:
    """Define-by-run space over tasks ``task_names`` (dataset names, in head order);
    returns the constants to merge into the config."""
    mtl_ffn.define(trial, task_names)
    suggest_finetuning(trial)
    return {"family": FAMILY}
