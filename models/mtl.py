"""Shared trunk + one classification head per task.

A single-task model is the one-task case, so one training loop serves every family.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


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

    def forward(self, x: torch.Tensor, task: int = 0) -> torch.Tensor:
        """(batch, n_channels * length) -> logits (batch, class_counts[task])."""
        task = int(task)
        if not 0 <= task < self.num_tasks:
            raise ValueError(f"task {task} out of range: this model has {self.num_tasks} task(s)")
        return self.heads[task](self.trunk(x))
