"""Share first, then specialise: the two stages of the ``ft-*`` families, each one run of
the training loop (:func:`tuning.training_loop.fit_one_run`).

**Stage 1** trains the family's multi-task twin (``ft-cnn`` -> ``mtl-cnn``, same config keys)
on the training rows of every dataset and keeps its best epoch on their validation rows,
as an ``mtl-*`` run does. **Stage 2** copies its trunk into one network per dataset with
that dataset's head (:class:`models.FineTunedNets`) and trains each on its own dataset's
training rows only. Config keys (search_spaces.common.suggest_finetuning; defaults in
:data:`DEFAULTS`): ``ft_train`` (what may change: "head", "last_block", "all"),
``ft_lr_ratio`` (stage 2's rate over ``lr``), ``ft_trunk_lr_ratio`` (the trunk's rate over
the head's), ``ft_epoch_share``. Both stages use the same rows: nothing outside a split's or
fold's training part is trained on, and normalisation is fitted on those rows alone.

**Budget** (ASHA's unit): ``max_epochs`` covers both stages. Stage 2 takes
``round(ft_epoch_share * max_epochs)`` epochs (at least 1), stage 1 the rest (at least 1).
An epoch of either stage is one pass over every dataset's training rows, so one reported
iteration (``training_iteration``, ``epoch``) costs about the same in both, and a trial has
as many iterations as an ``mtl-*`` trial.

**Where stage 2 trains.** In a trial (``on_epoch`` given), the networks train side by side in
one fit (task sampling "one_pass": each step one batch of one dataset, for that dataset's
network only), so every iteration reports each dataset's validation score
(``val_<metric>/<dataset>``) like an ``mtl-*`` trial, and each checkpoint holds the stage and
what a resumed trial needs. Elsewhere (reruns, the bundle's final model), each network
trains in its own fit, with its own early stopping and best epoch. Either way a network
whose stage-2 epochs never beat its starting weights on its validation rows keeps those
(:class:`tuning.training_loop.WarmStart`'s epoch 0).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

import models
from tuning.training_loop import FitResult, TaskData, WarmStart, common_channels, common_length, fit_one_run

DEFAULTS = {"ft_epoch_share": 0.25, "ft_lr_ratio": 0.3, "ft_train": "all", "ft_trunk_lr_ratio": 1.0}
"""For hand-written configs without the fine-tuning keys."""


def setting(config: dict, key: str):
    return config.get(key, DEFAULTS[key])


def stage_epochs(config: dict, max_epochs: int) -> tuple[int, int]:
    """(stage-1 epochs, stage-2 epochs), summing to ``max_epochs`` (>= 2), each >= 1."""
    if max_epochs < 2:
        raise ValueError(f"an ft-* family trains two stages of at least one epoch each; max_epochs={max_epochs}")
    second = round(float(setting(config, "ft_epoch_share")) * max_epochs)
    second = min(max_epochs - 1, max(1, second))
    return max_epochs - second, second


def stage2_config(config: dict) -> dict:
    """Stage 2's training config: stage 1's, at ``lr * ft_lr_ratio``, every network on its own
    rows once per epoch with an unweighted loss (the networks share nothing)."""
    return {**config, "lr": float(config.get("lr", 1e-3)) * float(setting(config, "ft_lr_ratio")),
            "task_sampling": "one_pass", "loss_weighting": "equal"}


def warm_start(source, config: dict, tasks: Sequence[int], input_length: int) -> WarmStart:
    """Stage 2's starting point: copies of ``source``'s trunk with heads ``tasks``, frozen as
    ``ft_train`` says, the trunk's trainable part at ``ft_trunk_lr_ratio`` times the heads' rate."""
    nets = models.FineTunedNets.from_multitask(source, tasks).freeze(setting(config, "ft_train"))
    return WarmStart(nets, input_length, nets.parameter_groups(float(setting(config, "ft_trunk_lr_ratio"))))


def fit_two_stages(family: str, config: dict, tasks: Sequence[TaskData], *, max_epochs: int, seed: int,
                   metric: str = "accuracy", patience: int | None = None, device: str = "cpu",
                   on_epoch: Callable | None = None, resume_state: dict | None = None) -> FitResult:
    """Both stages of ``family`` (an ft-* family) on ``tasks``; arguments as :func:`fit`.

    Returns a FitResult whose ``model`` is a :class:`models.FineTunedNets` (network ``t`` is
    task ``t``'s, every parameter trainable again), ``task_epochs`` each network's (epochs
    run, best epoch) counted from the start of stage 1, ``epochs_run`` / ``best_epoch`` the
    latest of those, ``train_seconds`` both stages' (every network's), ``history`` stage 1's
    epochs then stage 2's (``stage`` 2; run alone, each row names its ``dataset``).
    """
    first_epochs, second_epochs = stage_epochs(config, max_epochs)
    state = resume_state or {"stage": 1}
    length = common_length(tasks)
    if state["stage"] == 1:
        first = fit_one_run(models.multitask_twin(family), config, tasks, max_epochs=first_epochs, seed=seed,
                            metric=metric, patience=patience, device=device, resume_state=state.get("fit"),
                            on_epoch=_reporter(on_epoch, 1, {}) if on_epoch else None)
        done = {"epochs_run": first.epochs_run, "best_epoch": first.best_epoch,
                "train_seconds": first.train_seconds, "history": first.history}
        source = first.model
    else:  # resumed in stage 2: the checkpoint holds the networks; any source of the same shape will do
        done = state["stage1"]
        source = models.build_model(models.multitask_twin(family), config, length, [t.n_classes for t in tasks],
                                    common_channels(tasks))
    config2 = stage2_config(config)
    kwargs = dict(max_epochs=second_epochs, seed=seed + 1, metric=metric, patience=patience, device=device)
    if on_epoch is not None:
        parts = [fit_one_run(family, config2, tasks, **kwargs,
                             warm_start=warm_start(source, config, range(len(tasks)), length),
                             on_epoch=_reporter(on_epoch, 2, done),
                             resume_state=state.get("fit") if state["stage"] == 2 else None)]
        nets = parts[0].model
        task_parts = parts * len(tasks)
    else:
        parts = [fit_one_run(family, config2, [task], **kwargs, warm_start=warm_start(source, config, [t], length))
                 for t, task in enumerate(tasks)]
        nets = models.FineTunedNets([p.model.nets[0] for p in parts])
        task_parts = parts
    return _combined(done, parts, task_parts, nets.unfreeze().eval(), tasks, on_epoch is None)


def _reporter(on_epoch: Callable, stage: int, done: dict) -> Callable:
    """``fit``'s on_epoch for one stage: epochs and seconds counted from the start of stage 1,
    and a checkpoint that says which stage it is in."""
    offset, seconds = int(done.get("epochs_run", 0)), float(done.get("train_seconds", 0.0))

    def report(epoch: int, metrics: dict, state: Callable[[], dict]) -> None:
        metrics = {**metrics, "epoch": offset + epoch, "train_seconds": seconds + metrics["train_seconds"],
                   "stage": stage}
        on_epoch(offset + epoch, metrics,
                 lambda: {"stage": stage, "fit": state(), **({"stage1": done} if stage == 2 else {})})

    return report


def _combined(done: dict, parts: list[FitResult], task_parts: list[FitResult], nets, tasks, alone: bool) -> FitResult:
    offset = int(done["epochs_run"])
    task_epochs = [(offset + p.epochs_run, offset + p.best_epoch) for p in task_parts]
    history = [{**row, "stage": 1} for row in done["history"]]
    for task, part in zip(tasks if alone else [None], parts):
        history += [{**row, "epoch": offset + row["epoch"], "stage": 2, **({"dataset": task.name} if alone else {})}
                    for row in part.history]
    if alone:  # each network's best scores under its dataset's name, and their means, as a joint fit reports
        best = {f"{k}/{t.name}": v for t, p in zip(tasks, parts) for k, v in p.best_metrics.items() if k.startswith("val_")}
        best.update({k: float(np.mean([p.best_metrics[k] for p in parts]))
                     for k in parts[0].best_metrics if k.startswith("val_") and "/" not in k})
    else:
        best = {**parts[0].best_metrics, "epoch": offset + parts[0].best_metrics.get("epoch", 0)}
    return FitResult(nets, [p.normalisers[i if not alone else 0] for i, p in enumerate(task_parts)],
                     parts[0].input_length, parts[0].device, max(b for _, b in task_epochs),
                     max(e for e, _ in task_epochs), float(done["train_seconds"]) + sum(p.train_seconds for p in parts),
                     best, history, parts[0].n_channels, task_epochs)
