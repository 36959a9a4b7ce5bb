"""Search-space pieces shared by every family: training hyperparameters, the
multi-task options and the fine-tuning options of the ft-* families.

Each function only calls ``trial.suggest_*`` (Ray's OptunaSearch passes a wrapper that
records suggestions, not a full optuna.Trial) and returns nothing: the suggest names
are the config keys the training loop reads.
"""

from __future__ import annotations

from typing import Sequence

import optuna

OPTIMIZERS = ("adam", "adamw", "sgd")
NORMALISATIONS = ("none", "per_waveform", "global")
TASK_SAMPLINGS = ("proportional", "uniform", "round_robin")
LOSS_WEIGHTINGS = ("equal", "size", "uncertainty", "static")
LR_SCHEDULES = ("none", "cosine", "plateau")
MAX_AUGMENT_SHIFT = 3  # samples: a detector's alignment jitters by 1-3 samples
FINETUNE_PARTS = ("head", "last_block", "all")  # models.FINETUNE_PARTS (models imports torch)


def suggest_training(trial: optuna.Trial) -> None:
    """Optimiser, regularisation, batch size, input scaling and loss weighting.

    Keys: lr, weight_decay, batch_size, optimizer, momentum (only when optimizer is
    "sgd"), normalisation, class_weighted_loss, then :func:`suggest_schedule` and
    :func:`suggest_augmentation`'s keys.
    """
    # Log scales: the useful values span orders of magnitude.
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
    trial.suggest_categorical("batch_size", [32, 64, 128, 256])
    optimizer = trial.suggest_categorical("optimizer", list(OPTIMIZERS))
    if optimizer == "sgd":
        # Adam-type optimisers have no momentum knob; only sample it where it acts.
        trial.suggest_float("momentum", 0.8, 0.99)
    trial.suggest_categorical("normalisation", list(NORMALISATIONS))
    # Imbalanced datasets (A12) needed a class-weighted loss in the lab's runs.
    trial.suggest_categorical("class_weighted_loss", [True, False])
    suggest_schedule(trial)
    suggest_augmentation(trial)


def suggest_schedule(trial: optuna.Trial) -> None:
    """Keys: lr_schedule ("none", "cosine" over the run's epochs, "plateau": halve on a
    validation plateau), label_smoothing (0-0.2; training loss only)."""
    trial.suggest_categorical("lr_schedule", list(LR_SCHEDULES))
    # Overlapping units (A12) make hard targets overconfident; small values only.
    trial.suggest_float("label_smoothing", 0.0, 0.2)


def suggest_augmentation(trial: optuna.Trial) -> None:
    """Keys: augment; when it is True, augment_shift (largest shift, 0-3 samples), augment_scale (0-0.2:
    factors in [1-s, 1+s]) and augment_noise (0-0.2 of the inputs' std). An explicit
    on/off lets TPE learn "off" instead of needing three values near zero."""
    if trial.suggest_categorical("augment", [False, True]):
        trial.suggest_int("augment_shift", 0, MAX_AUGMENT_SHIFT)
        trial.suggest_float("augment_scale", 0.0, 0.2)
        trial.suggest_float("augment_noise", 0.0, 0.2)


def check_task_names(task_names: Sequence[str]) -> tuple[str, ...]:
    """Task names as a tuple; they become parameter names, so they must be unique."""
    if isinstance(task_names, str):
        raise TypeError(f"task_names must be a sequence of names, got the string {task_names!r}")
    names = tuple(str(n) for n in task_names)
    if not names:
        raise ValueError("task_names is empty: a multi-task space needs at least one task")
    if len(set(names)) != len(names):
        raise ValueError(f"task_names has duplicates: {list(names)}")
    return names


def suggest_multitask(trial: optuna.Trial, task_names: Sequence[str]) -> None:
    """How tasks share the trunk's training.

    Keys: task_sampling, loss_weighting, task_weight_<name> for every task (only when
    loss_weighting is "static"), head_hidden, head_dropout (only when head_hidden > 0).
    """
    names = check_task_names(task_names)
    trial.suggest_categorical("task_sampling", list(TASK_SAMPLINGS))
    weighting = trial.suggest_categorical("loss_weighting", list(LOSS_WEIGHTINGS))
    if weighting == "static":
        for name in names:
            # Multiplicative weight around 1: log scale makes x0.5 and x2 equally likely.
            trial.suggest_float(f"task_weight_{name}", 0.25, 4.0, log=True)
    head_hidden = trial.suggest_categorical("head_hidden", [0, 32, 64])
    if head_hidden > 0:
        # A linear head has no dropout, so the value would have no effect there.
        trial.suggest_float("head_dropout", 0.0, 0.5)


def suggest_finetuning(trial: optuna.Trial) -> None:
    """Stage 2 of the ft-* families: how long, how fast and what to fine-tune.

    Keys: ft_epoch_share (0.1-0.5: the share of the trial's epochs that stage 2 takes;
    stage 1 takes the rest), ft_lr_ratio (0.03-1, log: stage 2's learning rate over stage
    1's ``lr``), ft_train ("head", "last_block", "all"), ft_trunk_lr_ratio (0.1-1, log: the
    trunk's rate over the head's; only when ft_train is not "head").
    """
    trial.suggest_float("ft_epoch_share", 0.1, 0.5)
    # Fine-tuning usually wants a smaller rate than training from scratch; 1 keeps stage 1's.
    trial.suggest_float("ft_lr_ratio", 0.03, 1.0, log=True)
    if trial.suggest_categorical("ft_train", list(FINETUNE_PARTS)) != "head":
        # A lower rate for the shared features than for the new head ("discriminative" rates).
        trial.suggest_float("ft_trunk_lr_ratio", 0.1, 1.0, log=True)
