"""Stage 2 of the ``ft-*`` families: one single-task copy of a trained multi-task net per dataset.

:class:`FineTunedNets` holds, for each chosen task of a :class:`MultiHeadNet`, a deep copy of
its trunk with that task's head: independent networks that start exactly where the
multi-task training left them. ``freeze(part)`` chooses what fine-tuning may change:

* ``"head"``: the head only; the trunk is a fixed feature extractor;
* ``"last_block"``: the head and the trunk's last layer with weights (each trunk's
  ``last_block_parameters``);
* ``"all"``: everything.

Frozen batch-norm layers stay in eval mode while the rest trains, so their running
statistics stay as stage 1 left them (``requires_grad`` alone would not stop those updating).
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn

from .mtl import MultiHeadNet, plain_batch_norms

FINETUNE_PARTS = ("head", "last_block", "all")


def single_task_copy(source: MultiHeadNet, task: int) -> MultiHeadNet:
    """A deep copy of ``source``'s trunk with a deep copy of head ``task``: the single-task
    network (one head, index 0) that ``models.build_model(family, config, ..., [k])`` builds."""
    net = copy.deepcopy(source)
    net.heads = nn.ModuleList([net.heads[int(task)]])
    net.class_counts = (source.class_counts[int(task)],)
    if net._task_norms:  # the trunk kept statistics per task: this network takes its task's
        plain_batch_norms(net.trunk, int(task))
        net._task_norms = []
    return net


class FineTunedNets(nn.Module):
    """Single-task networks side by side: ``forward(x, task)`` is ``nets[task](x)``.

    Args:
        nets: one single-task :class:`MultiHeadNet` per task, in task order.
    """

    def __init__(self, nets: Sequence[MultiHeadNet]):
        super().__init__()
        if any(net.num_tasks != 1 for net in nets):
            raise ValueError("FineTunedNets holds single-task networks (one head each)")
        self.nets = nn.ModuleList(nets)
        self.class_counts = tuple(net.class_counts[0] for net in self.nets)
        self._frozen_norms: list[nn.Module] = []

    @classmethod
    def from_multitask(cls, source: MultiHeadNet, tasks: Sequence[int]) -> "FineTunedNets":
        """Copies of ``source`` (left unchanged) for heads ``tasks``: network ``i`` is task ``tasks[i]``."""
        return cls([single_task_copy(source, t) for t in tasks])

    @property
    def num_tasks(self) -> int:
        return len(self.nets)

    def forward(self, x: torch.Tensor, task: int = 0) -> torch.Tensor:
        """(batch, n_channels * length) -> logits (batch, class_counts[task]) of network ``task``."""
        return self.nets[int(task)](x, 0)

    def freeze(self, part: str) -> "FineTunedNets":
        """Let fine-tuning change only ``part`` (one of FINETUNE_PARTS) of every network."""
        if part not in FINETUNE_PARTS:
            raise ValueError(f"fine-tuning part {part!r} is not one of {', '.join(FINETUNE_PARTS)}")
        self.unfreeze()
        for net in self.nets:
            if part == "all":
                continue
            keep = {id(p) for p in net.trunk.last_block_parameters()} if part == "last_block" else set()
            for p in net.trunk.parameters():
                p.requires_grad_(id(p) in keep)
            self._frozen_norms += [m for m in net.trunk.modules() if isinstance(m, nn.BatchNorm1d)
                                   and not any(p.requires_grad for p in m.parameters())]
        self.train(self.training)
        return self

    def unfreeze(self) -> "FineTunedNets":
        """Every parameter trainable again (after fine-tuning: counts and exports see whole networks)."""
        for p in self.parameters():
            p.requires_grad_(True)
        self._frozen_norms = []
        return self

    def train(self, mode: bool = True) -> "FineTunedNets":
        super().train(mode)
        for norm in self._frozen_norms:
            norm.eval()
        return self

    def parameter_groups(self, trunk_lr_scale: float = 1.0) -> list[dict]:
        """Optimiser groups of the trainable parameters: the heads at the fine-tuning rate
        (``lr_scale`` 1), the trunks' trainable part at ``trunk_lr_scale`` times it."""
        heads = [p for net in self.nets for p in net.heads.parameters() if p.requires_grad]
        trunks = [p for net in self.nets for p in net.trunk.parameters() if p.requires_grad]
        groups = [{"params": heads, "lr_scale": 1.0}]
        if trunks:
            groups.append({"params": trunks, "lr_scale": float(trunk_lr_scale)})
        return groups
