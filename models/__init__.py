"""Model registry: pure torch, no Ray, no tuning code.

Every network is a trunk (FFN, CNN or LSTM) plus one linear head per task
(:class:`MultiHeadNet`); single-task families are the one-task case. A fine-tuned family's
networks are one single-task copy per dataset of a multi-task net (:class:`FineTunedNets`).
"""

from __future__ import annotations

from .families import (AUTO, AUTO_CHOICES, AUTO_KEY, FAMILIES, is_finetuned, is_multitask, multitask_twin,
                       network_family, trunk_family)

_TORCH_NAMES = {"TRUNKS", "FFNTrunk", "CNNTrunk", "LSTMTrunk", "MultiHeadNet", "build_model",
                "count_parameters", "FineTunedNets", "FINETUNE_PARTS"}

__all__ = ["FAMILIES", "AUTO", "AUTO_CHOICES", "AUTO_KEY", "trunk_family", "network_family", "is_multitask",
           "is_finetuned", "multitask_twin", *sorted(_TORCH_NAMES)]


def __getattr__(name: str):
    # torch loads on first use of a network, not when the CLI checks a family name.
    if name in _TORCH_NAMES:
        from . import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")
