"""Shared trunk + one classification head per task.

A single-task model is the one-task case, so one training loop serves every family.

Batch norm in a shared trunk keeps **running statistics per task** (:class:`TaskBatchNorm`;
the scale and shift stay shared). The training loop feeds one task per batch, so in training
a batch is normalised by its own task's statistics; one shared running average would instead
mix the tasks, weighted towards the last few batches, and at evaluation normalise every task
by that mixture. On the stand-ins (one trained MTL-FFN, 20 epochs) the mixture scored A2's
validation rows 56 % against 99 % with A2's own statistics, and A4's 61-68 % against 71-74 %;
that is what made multi-task searches unstable (issue 23, item 7; docs/multitask-question.md).
A one-task model keeps plain ``nn.BatchNorm1d``, so single-task families are unchanged.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F


class TaskBatchNorm(nn.Module):
    """A batch norm (of a 2-D (batch, features) or 3-D (batch, channels, length) input) with
    one set of running statistics per task and one shared affine scale and shift.

    The task is ``self.task``, set by :class:`MultiHeadNet` before each trunk pass. Buffers
    have the names of ``nn.BatchNorm1d``'s with a leading task axis: ``running_mean`` and
    ``running_var`` (tasks, features), ``num_batches_tracked`` (tasks,). A state dict saved
    with a shared norm (1-D statistics) loads with its statistics copied to every task, which
    reproduces that model's outputs exactly.
    """

    def __init__(self, norm: nn.modules.batchnorm._BatchNorm, n_tasks: int):
        super().__init__()
        if not (norm.affine and norm.track_running_stats):
            raise ValueError("TaskBatchNorm needs a batch norm with an affine part and running statistics")
        self.num_features, self.eps, self.momentum = norm.num_features, norm.eps, norm.momentum
        self.weight, self.bias = norm.weight, norm.bias
        self.register_buffer("running_mean", norm.running_mean.detach().clone().repeat(n_tasks, 1))
        self.register_buffer("running_var", norm.running_var.detach().clone().repeat(n_tasks, 1))
        self.register_buffer("num_batches_tracked", norm.num_batches_tracked.detach().clone().repeat(n_tasks))
        self.task = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        task = self.task
        if self.training:
            self.num_batches_tracked[task] += 1
        # Basic indexing gives views: F.batch_norm updates this task's rows of the buffers in place.
        return F.batch_norm(x, self.running_mean[task], self.running_var[task], self.weight, self.bias,
                            self.training, self.momentum, self.eps)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            value = state_dict.get(prefix + name)
            shared = getattr(self, name)
            if value is not None and value.dim() == shared.dim() - 1:  # saved by a shared batch norm
                state_dict[prefix + name] = value.unsqueeze(0).expand_as(shared).clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"{self.num_features}, tasks={self.running_mean.shape[0]}, eps={self.eps}, momentum={self.momentum}"


def _task_batch_norms(module: nn.Module, n_tasks: int) -> list[TaskBatchNorm]:
    """Replace every batch norm inside ``module`` by a :class:`TaskBatchNorm` (same place,
    same state-dict keys); returns them."""
    replaced = []
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            norm = TaskBatchNorm(child, n_tasks)
            setattr(module, name, norm)
            replaced.append(norm)
        else:
            replaced += _task_batch_norms(child, n_tasks)
    return replaced


def plain_batch_norms(module: nn.Module, task: int) -> None:
    """Replace every :class:`TaskBatchNorm` inside ``module`` by the ``nn.BatchNorm1d`` of one
    task: that task's running statistics and the shared affine part (copies). What a
    single-task network made from a multi-task trunk needs (``models.finetune``)."""
    for name, child in module.named_children():
        if isinstance(child, TaskBatchNorm):
            norm = nn.BatchNorm1d(child.num_features, eps=child.eps, momentum=child.momentum)
            with torch.no_grad():
                norm.weight.copy_(child.weight)
                norm.bias.copy_(child.bias)
                norm.running_mean.copy_(child.running_mean[task])
                norm.running_var.copy_(child.running_var[task])
                norm.num_batches_tracked.copy_(child.num_batches_tracked[task])
            norm.train(child.training)
            setattr(module, name, norm)
        else:
            plain_batch_norms(child, task)


class MultiHeadNet(nn.Module):
    """``trunk`` followed by ``heads[task]``.

    Args:
        trunk: module mapping (batch, length) -> (batch, trunk.out_features); it must
            have an ``out_features`` attribute.
        class_counts: number of classes of each task, in task order (each >= 2).
        head_hidden: 0 for a linear head; > 0 for Linear -> ReLU -> Dropout -> Linear
            with this many hidden units.
        head_dropout: dropout inside a hidden head (unused when head_hidden == 0).
    """

    def __init__(
        self,
        trunk: nn.Module,
        class_counts: Sequence[int],
        head_hidden: int = 0,
        head_dropout: float = 0.0,
    ):
        super().__init__()
        if not hasattr(trunk, "out_features"):
            raise TypeError(f"trunk {type(trunk).__name__} has no 'out_features' attribute")
        counts = tuple(int(k) for k in class_counts)
        if not counts:
            raise ValueError("class_counts is empty: a model needs at least one task")
        if any(k < 2 for k in counts):
            raise ValueError(f"every task needs >= 2 classes, got class_counts={list(counts)}")
        head_hidden = int(head_hidden)
        if head_hidden < 0:
            raise ValueError(f"head_hidden must be >= 0, got {head_hidden}")
        self.trunk = trunk
        self.class_counts = counts
        # Per-task statistics only where there are several tasks (see the module docstring).
        self._task_norms = _task_batch_norms(trunk, len(counts)) if len(counts) > 1 else []
        in_features = int(trunk.out_features)
        heads = []
        for k in counts:
            if head_hidden > 0:
                heads.append(
                    nn.Sequential(
                        nn.Linear(in_features, head_hidden),
                        nn.ReLU(),
                        nn.Dropout(float(head_dropout)),
                        nn.Linear(head_hidden, k),
                    )
                )
            else:
                heads.append(nn.Linear(in_features, k))
        self.heads = nn.ModuleList(heads)

    @property
    def num_tasks(self) -> int:
        return len(self.heads)

    @property
    def task_specific_features(self) -> bool:
        """True when the trunk's output depends on the task (per-task batch-norm statistics):
        the trunk must then run once per task, not once for all heads."""
        return bool(self._task_norms)

    def features(self, x: torch.Tensor, task: int = 0) -> torch.Tensor:
        """The trunk's output for task ``task``: (batch, trunk.out_features)."""
        task = int(task)
        if not 0 <= task < self.num_tasks:
            raise ValueError(f"task {task} out of range: this model has {self.num_tasks} task(s)")
        for norm in self._task_norms:
            norm.task = task
        return self.trunk(x)

    def forward(self, x: torch.Tensor, task: int = 0) -> torch.Tensor:
        """(batch, n_channels * length) -> logits (batch, class_counts[task])."""
        features = self.features(x, task)  # checks the task first
        return self.heads[int(task)](features)
