"""Search space of the "auto" family: ffn, cnn and lstm at once, the family one more choice.

A user who does not know which family suits the data gets one search over all three (the
combined algorithm selection and hyperparameter optimisation problem of AutoML): the first
choice, ``auto_family``, picks the family; that family's own trunk space follows, then the
training space every family shares. Optuna's TPE samples such conditional spaces as they
are: a key the chosen family does not use is simply absent from the trial. Keys shared by
two trunk spaces (``dropout``, ``batch_norm``) have the same range in both.
"""

from __future__ import annotations

from typing import Sequence

import optuna

from models import AUTO, AUTO_CHOICES, AUTO_KEY

from . import cnn, ffn, lstm
from .common import suggest_training

FAMILY = AUTO
TRUNK_SPACES = {"ffn": ffn.suggest_trunk, "cnn": cnn.suggest_trunk, "lstm": lstm.suggest_trunk}


def define(trial: optuna.Trial, task_names: Sequence[str] = ()) -> dict:
    """Define-by-run space; returns the constants to merge into the config."""
    chosen = trial.suggest_categorical(AUTO_KEY, list(AUTO_CHOICES))
    TRUNK_SPACES[chosen](trial)
    suggest_training(trial)
    return {"family": FAMILY}
