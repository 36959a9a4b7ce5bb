"""Search space of the "cnn" family (models.cnn.CNNTrunk)."""

from __future__ import annotations

from typing import Sequence

import optuna

from .common import suggest_training

FAMILY = "cnn"
MAX_BLOCKS = 4


def suggest_trunk(trial: optuna.Trial) -> None:
    """Keys: cnn_n_blocks, cnn_channels_b{i} and cnn_kernel_b{i} for i < cnn_n_blocks,
    cnn_pool, batch_norm, dropout, cnn_global_pool, cnn_dense_units."""
    n_blocks = trial.suggest_int("cnn_n_blocks", 1, MAX_BLOCKS)
    for i in range(n_blocks):
        trial.suggest_int(f"cnn_channels_b{i}", 8, 64, log=True)
        # Odd sizes keep "same" padding symmetric; 9 samples is ~0.3 ms at 30 kHz.
        trial.suggest_categorical(f"cnn_kernel_b{i}", [3, 5, 7, 9])
    trial.suggest_categorical("cnn_pool", ["max", "avg", "none"])
    trial.suggest_categorical("batch_norm", [True, False])
    trial.suggest_float("dropout", 0.0, 0.5)
    trial.suggest_categorical("cnn_global_pool", ["avg", "max", "flatten"])
    trial.suggest_categorical("cnn_dense_units", [0, 32, 64, 128])


def define(trial: optuna.Trial, task_names: Sequence[str] = ()) -> dict:
    """Define-by-run space; returns the constants to merge into the config.

    ``task_names`` is unused by single-task families (kept for one calling convention).
    """
    suggest_trunk(trial)
    suggest_training(trial)
    return {"family": FAMILY}
