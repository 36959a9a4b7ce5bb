"""The one rule that picks the best trial of a search: used by the driver's summary, the
export and the benchmarks, so all three name the same trial.

A trial's history is its per-epoch reports in epoch order (a pandas DataFrame, or a list
of dicts, holding the objective column and ``training_iteration`` or ``epoch``). A rule
turns a history into one score; the best score wins, ties going to the smallest trial id
(so the pick never depends on the order the trials are listed in).

Rules:

``best_epoch``
    the trial's best single epoch. With dozens of trials x dozens of epochs scored on one
    validation part of a few hundred rows, this is mostly the luckiest epoch.
``window3`` (default)
    the best mean over 3 consecutive epochs (all of them if the trial ran fewer): a
    trial must be good for several epochs running, which one lucky epoch is not.

Why ``window3`` is the default (measured with ``benchmarks/archive/selection.py``, sections
``selection-ffn-A12`` and ``selection-ffn-A12r64`` of ``benchmarks/RESULTS.md``: every
trial of a 24- and a 16-trial random ffn search, 20 epochs each, rerun on 3 full-split
folds): at that scale the two rules are tied. Both pick the same trial overall; over 500
half-size searches drawn from the same trials the mean regret against the best trial was
0.08 (window3) vs 0.10 points (best_epoch) on A12 and 0.05 vs 0.05 on A12 at 64 samples,
rank correlation with the full-split accuracy 0.89 vs 0.90 and 0.94 vs 0.94. So the choice
rests on what was not a tie: the window's score overstates the pick's full-split accuracy
less (41.2 vs 41.7 for a 37.9 truth on A12), and the noise it damps grows with the number of
trials x epochs (the default search has 48 x 40, where the issue measured a 3.5-point
overstatement; an argument, not measured here), while a steadily improving trial loses
only the spread of its last three epochs. Rerunning the top few (:func:`rank_trials`) by cross-validation would cost k x folds
trainings more per search; it is not a rule here (not measured).

The epoch reported with a pick is the trial's best single epoch inside its best window,
``row`` is that epoch's report and ``means`` every numeric report averaged over the
window (per-task scores of a multi-task trial, on the same footing as the score).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import pandas as pd

WINDOW = 3
RULES = ("best_epoch", "window3")
DEFAULT_RULE = "window3"
SCORE_NOTE = "validation scores averaged over its best 3 consecutive epochs"
"""How the default rule's scores read, for a summary line."""


@dataclass(frozen=True)
class TrialScore:
    score: float      # the rule's value, in the objective's units
    epoch: int        # the reported epoch (1-based) behind the score
    row: dict = field(default_factory=dict)  # that epoch's report
    means: dict = field(default_factory=dict)  # every numeric report, averaged over the window


@dataclass(frozen=True)
class Pick(TrialScore):
    trial_id: str = ""


def score_trial(history, metric: str, mode: str, rule: str = DEFAULT_RULE) -> TrialScore | None:
    """One trial's score under ``rule``; None if it never reported a finite ``metric``."""
    frame = _frame(history)
    if frame is None or metric not in frame.columns:
        return None
    values = pd.to_numeric(frame[metric], errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(values).any():
        return None
    sign = 1.0 if mode == "max" else -1.0
    signed = np.where(np.isfinite(values), sign * values, -np.inf)  # NaN: never the best
    start, stop = _RULES[rule](signed)
    inside = int(start + np.argmax(signed[start:stop]))
    window = signed[start:stop]
    score = sign * float(window.mean()) if np.isfinite(window).all() else sign * float(signed[inside])
    row = frame.iloc[inside].to_dict()
    numeric = frame.iloc[start:stop].select_dtypes("number")
    means = {key: float(value) for key, value in numeric.mean().items()}
    return TrialScore(score, _epoch(row, inside), row, means)


def rank_trials(histories: Mapping[str, object], metric: str, mode: str,
                rule: str = DEFAULT_RULE) -> list[Pick]:
    """Every trial of ``histories`` (trial id -> history) that scored, best first under
    ``rule`` (ties: smallest trial id first); the top k are the candidates of an ensemble
    or of a re-scoring."""
    if rule not in _RULES:
        raise ValueError(f"selection rule {rule!r} is not one of {RULES}")
    sign = 1.0 if mode == "max" else -1.0
    picks = []
    for trial_id in sorted(histories, key=str):
        scored = score_trial(histories[trial_id], metric, mode, rule)
        if scored is not None:
            picks.append(Pick(scored.score, scored.epoch, scored.row, scored.means, str(trial_id)))
    return sorted(picks, key=lambda p: -sign * p.score)  # stable: ties keep the id order


def pick_best(histories: Mapping[str, object], metric: str, mode: str,
              rule: str = DEFAULT_RULE) -> Pick | None:
    """The best of ``histories`` (trial id -> history) under ``rule``; None if none scored."""
    ranked = rank_trials(histories, metric, mode, rule)
    return ranked[0] if ranked else None


def _best_epoch(signed: np.ndarray) -> tuple[int, int]:
    i = int(np.argmax(signed))
    return i, i + 1


def _best_window(signed: np.ndarray, width: int = WINDOW) -> tuple[int, int]:
    if len(signed) <= width:
        return 0, len(signed)
    # A window with a NaN epoch scores -inf, so it never wins over a complete one.
    means = np.convolve(signed, np.ones(width) / width, mode="valid")
    means = np.where(np.isnan(means), -np.inf, means)
    i = int(np.argmax(means))
    return i, i + width


_RULES: dict[str, Callable[[np.ndarray], tuple[int, int]]] = {
    "best_epoch": _best_epoch, "window3": _best_window,
}


def _frame(history) -> pd.DataFrame | None:
    if history is None:
        return None
    frame = history if isinstance(history, pd.DataFrame) else pd.DataFrame(list(history))
    if frame.empty:
        return None
    for key in ("training_iteration", "epoch"):
        if key in frame.columns:
            return frame.sort_values(key, kind="stable").reset_index(drop=True)
    return frame.reset_index(drop=True)


def _epoch(row: dict, index: int) -> int:
    for key in ("training_iteration", "epoch"):
        value = row.get(key)
        if value is not None and np.isfinite(value):
            return int(value)
    return index + 1
