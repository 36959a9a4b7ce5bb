"""Search space of the "ffn" family (models.ffn.FFNTrunk)."""

from __future__ import annotations

from typing import Sequence

import optuna

from .common import suggest_training

FAMILY = "ffn"
MAX_LAYERS = 4


def suggest_trunk(trial: optuna.Trial) -> None:
    """Keys: ffn_n_layers, ffn_units_l0 .. ffn_units_l{n-1}, dropout, batch_norm, activation."""
    n_layers = trial.suggest_int("ffn_n_layers", 1, MAX_LAYERS)
    for i in range(n_layers):
        trial.suggest_int(f"ffn_units_l{i}", 16, 256, log=True)
    trial.suggest_float("dropout", 0.0, 0.5)
    trial.suggest_categorical("batch_norm", [True, False])
    trial.suggest_categorical("activation", ["relu", "gelu", "elu"])


def define(trial: optuna.Trial, task_names: Sequence[str] = ()) -> dict:
    """Define-by-run space; returns the constants to merge into the config.

    ``task_names`` is unused by single-task families (kept for one calling convention).
    """
    suggest_trunk(trial)
    suggest_training(trial)
    return {"family": FAMILY}
