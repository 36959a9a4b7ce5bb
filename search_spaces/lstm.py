"""Search space of the "lstm" family (models.lstm.LSTMTrunk)."""

from __future__ import annotations

from typing import Sequence

import optuna

from .common import suggest_training

FAMILY = "lstm"


def suggest_trunk(trial: optuna.Trial) -> None:
    """Keys: lstm_hidden, lstm_layers, bidirectional, dropout, lstm_readout, lstm_input_stride."""
    # Capped so the slowest config (bidirectional, stride 1) stays near 4 s per epoch on one
    # CPU thread; 3 layers x 128 units took 12 s and never won on these short waveforms.
    trial.suggest_int("lstm_hidden", 16, 96, log=True)
    trial.suggest_int("lstm_layers", 1, 2)
    trial.suggest_categorical("bidirectional", [True, False])
    trial.suggest_float("dropout", 0.0, 0.5)
    trial.suggest_categorical("lstm_readout", ["last", "mean"])
    # Stride > 1 shortens the recurrence (48 -> 24 or 12 steps): the main CPU cost.
    trial.suggest_categorical("lstm_input_stride", [1, 2, 4])


def define(trial: optuna.Trial, task_names: Sequence[str] = ()) -> dict:
    """Define-by-run space; returns the constants to merge into the config.

    ``task_names`` is unused by single-task families (kept for one calling convention).
    """
    suggest_trunk(trial)
    suggest_training(trial)
    return {"family": FAMILY}
