"""The one training loop: :func:`fit_one_run`. Tune trials, one-split and full-split reruns,
bundles and the ft-* stages all reach it through :func:`tuning.training.fit`.

Every network is a shared trunk with one head per task (``models.MultiHeadNet``); a
single-task run is the one-task case, so multi-task learning needs no second loop.

Per epoch: ``sum_t ceil(n_train_t / batch_size)`` optimiser steps, each on one batch of one
task, the task picked by ``config["task_sampling"]``; the step's loss is weighted by
``config["loss_weighting"]``. Then every task's validation part is scored and the epoch's
metrics go to ``on_epoch`` (Tune's report, or nothing in a rerun).

Everything random in an epoch is seeded from ``(seed, epoch)`` (batch order, dropout,
training-batch augmentation from :mod:`tuning.data.augment`), and the learning-rate schedule's
state is checkpointed with the rest, so a run resumed from the checkpoint of epoch e
continues exactly as the uninterrupted run would have.

Schedule keys: ``lr_schedule`` ("none", "cosine": cosine decay to 0 over ``max_epochs``,
"plateau": halve the rate after 3 epochs without validation improvement) and
``label_smoothing`` (training loss only; the validation loss stays plain).

The ``ft-*`` families are two runs of this loop (:mod:`tuning.finetune`): the multi-task
net, then, from a :class:`WarmStart`, one fine-tuned copy per dataset. This module knows
nothing of them: the choice between one run and two is :mod:`tuning.training`'s.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

import models
from tuning.data.augment import Augmenter
from tuning.metrics import classification_metrics, metric_mode
from tuning.data.preprocess import Normaliser, resample_to_length

TASK_SAMPLING = ("proportional", "uniform", "round_robin", "one_pass")
"""The searched policies, and ``one_pass`` (every task's batches once per epoch, in random
order: independent networks trained side by side, as the ft-* stage 2 does)."""
LOSS_WEIGHTING = ("equal", "size", "uncertainty", "static")
LR_SCHEDULES = ("none", "cosine", "plateau")
PLATEAU_PATIENCE, PLATEAU_FACTOR = 3, 0.5
EVAL_BATCH = 4096


@dataclass(frozen=True)
class TaskData:
    """One dataset's training and validation rows, raw (not yet normalised).

    ``X_*``: float32, shape (rows, n_channels * samples) channel-major, in the CSV's units;
    ``y_*``: int64 class ids.
    """

    name: str
    n_classes: int
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    n_channels: int = 1

    @classmethod
    def from_rows(cls, dataset, train: np.ndarray, val: np.ndarray) -> "TaskData":
        """Select ``train`` / ``val`` row indices of a ``tuning.data.readers.Dataset``."""
        return cls(dataset.name, dataset.n_classes, dataset.X[train], dataset.y[train],
                   dataset.X[val], dataset.y[val], getattr(dataset, "n_channels", 1))

    @property
    def length(self) -> int:
        """Samples per channel."""
        return int(self.X_train.shape[1]) // self.n_channels


@dataclass
class FitResult:
    """A trained network with what it needs to score new waveforms.

    The network's input shape: ``n_channels`` x ``input_length`` samples per row, rows
    flattened channel-major (a Dataset's ``X`` rows after resampling to ``input_length``).
    """

    model: nn.Module
    normalisers: list[Normaliser]
    input_length: int
    device: str
    best_epoch: int
    epochs_run: int
    train_seconds: float
    best_metrics: dict
    history: list[dict] = field(default_factory=list)
    n_channels: int = 1
    task_epochs: list[tuple[int, int]] = field(default_factory=list)
    """ft-* families: (epochs run, best epoch) behind each task's network, stage 1 included."""

    def task_view(self, task: int) -> "FitResult":
        """What scores task ``task``: for ft-* families its own single-task network (with its
        normaliser and epochs); for the others this result, whose one network serves every task."""
        if not isinstance(self.model, models.FineTunedNets):
            return self
        epochs_run, best_epoch = self.task_epochs[task]
        return FitResult(self.model.nets[task], [self.normalisers[task]], self.input_length, self.device,
                         best_epoch, epochs_run, self.train_seconds, self.best_metrics, self.history,
                         self.n_channels)

    def predict(self, X: np.ndarray, task: int = 0) -> np.ndarray:
        """Class ids, shape (rows,), for raw waveforms ``X`` of task ``task``."""
        x = _prepare_inputs(X, self.normalisers[task], self.input_length, self.n_channels)
        return predict_labels(self.model, torch.from_numpy(x), task, self.device)

    @torch.no_grad()
    def predict_proba(self, X: np.ndarray, task: int = 0) -> np.ndarray:
        """Class probabilities, shape (rows, classes), for raw waveforms ``X`` of task ``task``."""
        self.model.eval()
        x = torch.from_numpy(_prepare_inputs(X, self.normalisers[task], self.input_length, self.n_channels))
        return torch.softmax(_logits(self.model, x, task, self.device), dim=1).numpy()


@dataclass
class WarmStart:
    """Train ``model`` instead of a fresh network of the family (stage 2 of the ft-* families).

    ``model``: forward(x, task) for every task of the fit; ``input_length``: the samples per
    channel it was built for (each task is resampled to it); ``param_groups``: the optimiser's
    groups ({"params": [...], "lr_scale": float}; frozen parameters left out). Its weights
    before the first epoch are a candidate for the best epoch (epoch 0), so training never
    returns a network that scores lower on the validation rows than the one it started from.
    """

    model: nn.Module
    input_length: int
    param_groups: list[dict]


class TaskLossWeighting(nn.Module):
    """Per-task loss weights: equal, size-proportional, static (tuned) or learned.

    ``uncertainty`` is Kendall et al. (2018) for classification: one learned log-variance
    ``s_t`` per task and a step loss of ``exp(-s_t) * L_t + s_t / 2``.
    """

    def __init__(self, mode: str, task_sizes: Sequence[int], static_weights: Sequence[float]):
        super().__init__()
        if mode not in LOSS_WEIGHTING:
            raise ValueError(f"loss_weighting {mode!r} is not one of {LOSS_WEIGHTING}")
        self.mode = mode
        sizes = torch.tensor(task_sizes, dtype=torch.float32)
        if mode == "uncertainty":
            self.log_vars = nn.Parameter(torch.zeros(len(task_sizes)))
            fixed = torch.ones(len(task_sizes))
        elif mode == "size":
            fixed = sizes * len(task_sizes) / sizes.sum()  # mean weight 1 keeps the lr meaning
        elif mode == "static":
            fixed = torch.tensor(static_weights, dtype=torch.float32)
        else:
            fixed = torch.ones(len(task_sizes))
        self.register_buffer("fixed", fixed)

    def forward(self, loss: torch.Tensor, task: int) -> torch.Tensor:
        if self.mode == "uncertainty":
            return torch.exp(-self.log_vars[task]) * loss + 0.5 * self.log_vars[task]
        return self.fixed[task] * loss


def common_length(tasks: Sequence[TaskData]) -> int:
    """Input length of the network: the longest task's; shorter tasks are resampled to it."""
    return max(task.length for task in tasks)


def common_channels(tasks: Sequence[TaskData]) -> int:
    """Channels of the network's input: every task must have the same count (a shared trunk
    reads one probe layout; tuning.settings rejects mixed counts before Ray starts)."""
    counts = {task.name: task.n_channels for task in tasks}
    if len(set(counts.values())) != 1:
        raise ValueError(f"tasks differ in channel count {counts}; a shared trunk needs one count")
    return next(iter(counts.values()))


def fit_one_run(
    family: str,
    config: dict,
    tasks: Sequence[TaskData],
    *,
    max_epochs: int,
    seed: int,
    metric: str = "accuracy",
    patience: int | None = None,
    device: str = "cpu",
    on_epoch: Callable[[int, dict, Callable[[], dict]], None] | None = None,
    resume_state: dict | None = None,
    warm_start: WarmStart | None = None,
) -> FitResult:
    """One run of the loop: train ``family`` with hyperparameters ``config`` on ``tasks``.

    ``metric`` picks the validation objective (mean over tasks) that selects the best epoch;
    ``patience`` stops after that many epochs without improvement (None: run all epochs).
    ``on_epoch(epoch, metrics, state)`` is called after every epoch (1-based); ``state()``
    returns a checkpointable dict that ``resume_state`` accepts to continue after it.
    The returned model holds the weights of the best epoch. ``warm_start``: train a given
    network instead of a fresh one of ``family`` (which an ft-* family needs: its fresh
    network is a stage-1 multi-task net, built by :mod:`tuning.finetune`).
    """
    torch.manual_seed(seed)
    length, channels = common_length(tasks), common_channels(tasks)
    if warm_start is not None:
        length = int(warm_start.input_length)
    normalisers = [Normaliser(config.get("normalisation", "none")).fit(t.X_train) for t in tasks]
    train_x = [_tensor(_prepare_inputs(t.X_train, n, length, channels), device) for t, n in zip(tasks, normalisers)]
    train_y = [torch.tensor(t.y_train, dtype=torch.long, device=device) for t in tasks]  # copies: Ray hands read-only arrays
    val_x = [torch.from_numpy(_prepare_inputs(t.X_val, n, length, channels)) for t, n in zip(tasks, normalisers)]

    if warm_start is None:
        model = models.build_model(family, config, length, [t.n_classes for t in tasks], channels).to(device)
    else:
        model = warm_start.model.to(device)
    sizes = [len(t.y_train) for t in tasks]
    weighting = TaskLossWeighting(
        config.get("loss_weighting", "equal"), sizes,
        [config.get(f"task_weight_{t.name}", 1.0) for t in tasks],
    ).to(device)
    criteria = [_criterion(t, config, device) for t in tasks]
    optimizer = _optimizer(config, warm_start.param_groups if warm_start else [{"params": model.parameters()}],
                           weighting)
    scheduler = _lr_scheduler(config, optimizer, max_epochs, metric_mode(metric))
    augment = Augmenter.from_config(config, train_x, channels)

    sign = 1.0 if metric_mode(metric) == "max" else -1.0
    start_epoch, best, best_state, history, train_seconds = 0, None, None, [], 0.0
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        weighting.load_state_dict(resume_state["weighting"])
        optimizer.load_state_dict(resume_state["optimizer"])
        if scheduler is not None and resume_state.get("scheduler") is not None:
            scheduler.load_state_dict(resume_state["scheduler"])
        start_epoch = int(resume_state["epoch"])
        best, history = resume_state["best"], list(resume_state["history"])
        best_state = resume_state.get("best_model")
        train_seconds = float(resume_state["train_seconds"])
    elif warm_start is not None:  # epoch 0: the starting weights compete with the trained ones
        best = {**_validate(model, tasks, val_x, criteria, device), "epoch": 0}
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    batch_size = int(config.get("batch_size", 64))
    policy = config.get("task_sampling", "proportional")
    epoch = start_epoch
    for epoch in range(start_epoch + 1, max_epochs + 1):
        started = time.perf_counter()
        train_loss = _train_one_epoch(model, weighting, criteria, optimizer, train_x, train_y,
                                      batch_size, policy, seed, epoch, augment)
        train_seconds += time.perf_counter() - started
        metrics = _validate(model, tasks, val_x, criteria, device)
        metrics.update(train_loss=train_loss, epoch=epoch, train_seconds=train_seconds,
                       lr=float(optimizer.param_groups[0]["lr"]))
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(metrics[f"val_{metric}"])
        elif scheduler is not None:
            scheduler.step()
        if weighting.mode == "uncertainty":
            for task, log_var in zip(tasks, weighting.log_vars.detach().cpu().tolist()):
                metrics[f"log_var/{task.name}"] = log_var
        history.append({k: v for k, v in metrics.items() if not isinstance(v, (list, dict))})
        if best is None or sign * metrics[f"val_{metric}"] > sign * best[f"val_{metric}"]:
            best = history[-1]
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if on_epoch is not None:
            def state(epoch=epoch):
                return {"epoch": epoch, "model": model.state_dict(), "weighting": weighting.state_dict(),
                        "optimizer": optimizer.state_dict(), "best": best, "history": history,
                        "scheduler": scheduler.state_dict() if scheduler is not None else None,
                        "best_model": best_state, "train_seconds": train_seconds}
            on_epoch(epoch, metrics, state)
        if patience is not None and epoch - best["epoch"] >= patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return FitResult(model, normalisers, length, device, int(best["epoch"]) if best else 0,
                     epoch, train_seconds, best or {}, history, channels)


def _train_one_epoch(model, weighting, criteria, optimizer, train_x, train_y,
                     batch_size, policy, seed, epoch, augment: Augmenter | None = None) -> float:
    model.train()
    rng = np.random.default_rng([seed, epoch])
    # Its own stream: turning augmentation on leaves the batch order unchanged.
    augment_rng = np.random.default_rng([seed, epoch, 1])
    torch.manual_seed(seed * 1_000_003 + epoch)  # dropout masks, reproducible after a resume
    sizes = np.array([len(y) for y in train_y])
    schedule = _task_schedule(policy, sizes, batch_size, rng)
    orders = [rng.permutation(n) for n in sizes]
    cursors = np.zeros(len(sizes), dtype=np.int64)
    total, steps = 0.0, 0
    for task in schedule:
        start = cursors[task]
        if start >= sizes[task]:  # a task sampled more often than its size: next pass
            orders[task], start = rng.permutation(sizes[task]), 0
        rows = torch.from_numpy(orders[task][start:start + batch_size]).to(train_x[task].device)
        cursors[task] = start + batch_size
        if len(rows) < 2:  # batch norm cannot train on one row; it rejoins the next pass
            continue
        inputs = train_x[task][rows]
        if augment is not None and augment.active:
            inputs = augment(inputs, augment_rng)
        logits = model(inputs, int(task))
        loss = weighting(criteria[task](logits, train_y[task][rows]), int(task))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach())
        steps += 1
    return total / max(steps, 1)


def _task_schedule(policy: str, sizes: np.ndarray, batch_size: int, rng) -> np.ndarray:
    """The task of each step in one epoch: as many steps as one pass over every task."""
    n_steps = int(sum(math.ceil(n / batch_size) for n in sizes))
    n_tasks = len(sizes)
    if n_tasks == 1:
        return np.zeros(n_steps, dtype=np.int64)
    if policy == "proportional":
        return rng.choice(n_tasks, size=n_steps, p=sizes / sizes.sum())
    if policy == "uniform":
        return rng.integers(0, n_tasks, size=n_steps)
    if policy == "round_robin":
        return np.arange(n_steps) % n_tasks
    if policy == "one_pass":
        steps = [math.ceil(n / batch_size) for n in sizes]
        return rng.permutation(np.repeat(np.arange(n_tasks), steps))
    raise ValueError(f"task_sampling {policy!r} is not one of {TASK_SAMPLING}")


@torch.no_grad()
def _validate(model, tasks, val_x, criteria, device) -> dict:
    model.eval()
    per_task = {}
    for i, task in enumerate(tasks):
        logits = _logits(model, val_x[i], i, device)
        target = torch.tensor(task.y_val, dtype=torch.long)  # a copy: Ray hands read-only arrays
        scores = classification_metrics(task.y_val, logits.argmax(1).numpy(), task.n_classes)
        # Unweighted loss, so that val_loss compares across class-weighting choices.
        scores["loss"] = float(nn.functional.cross_entropy(logits, target))
        per_task[task.name] = scores
    metrics = {}
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "loss"):
        metrics[f"val_{key}"] = float(np.mean([s[key] for s in per_task.values()]))
        if len(tasks) > 1:
            for name, scores in per_task.items():
                metrics[f"val_{key}/{name}"] = scores[key]
    return metrics


def _logits(model, x: torch.Tensor, task: int, device: str) -> torch.Tensor:
    parts = [model(x[i:i + EVAL_BATCH].to(device), task).float().cpu()
             for i in range(0, len(x), EVAL_BATCH)]
    return torch.cat(parts)


@torch.no_grad()
def predict_labels(model, x: torch.Tensor, task: int, device: str = "cpu") -> np.ndarray:
    """Head ``task``'s class ids (int64, rows) for network inputs ``x`` (already prepared),
    in evaluation batches; ``model`` is put in eval mode."""
    model.eval()
    return _logits(model, x, task, device).argmax(1).numpy()


def _prepare_inputs(X: np.ndarray, normaliser: Normaliser, length: int, n_channels: int = 1) -> np.ndarray:
    return np.ascontiguousarray(resample_to_length(normaliser.transform(X), length, n_channels), dtype=np.float32)


def _tensor(x: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(x).to(device)


def _criterion(task: TaskData, config: dict, device: str) -> nn.Module:
    weight = None
    if config.get("class_weighted_loss", False):
        counts = np.bincount(task.y_train, minlength=task.n_classes).astype(np.float64)
        weight = torch.tensor(len(task.y_train) / (task.n_classes * np.maximum(counts, 1)),
                              dtype=torch.float32, device=device)
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=float(config.get("label_smoothing", 0.0)))


def _lr_scheduler(config: dict, optimizer, max_epochs: int, mode: str):
    """The config's learning-rate schedule, stepped once per epoch (None: constant rate)."""
    name = config.get("lr_schedule", "none")
    if name == "none":
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, max_epochs))
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=PLATEAU_FACTOR,
                                                          patience=PLATEAU_PATIENCE)
    raise ValueError(f"lr_schedule {name!r} is not one of {LR_SCHEDULES}")


def _optimizer(config: dict, param_groups: list[dict], weighting: nn.Module) -> torch.optim.Optimizer:
    """``param_groups``: {"params": ..., "lr_scale": float (default 1)}; each group's rate is
    ``config["lr"]`` times its scale."""
    lr = float(config.get("lr", 1e-3))
    groups = [{"params": g["params"], "lr": lr * float(g.get("lr_scale", 1.0)),
               "weight_decay": float(config.get("weight_decay", 0.0))} for g in param_groups]
    extra = list(weighting.parameters())
    if extra:  # learned task log-variances: no weight decay pulling them to zero
        groups.append({"params": extra, "weight_decay": 0.0})
    name = config.get("optimizer", "adam")
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=float(config.get("momentum", 0.9)), nesterov=True)
    raise ValueError(f"optimizer {name!r} is not one of adam, adamw, sgd")
