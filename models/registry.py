"""Building networks: trunk classes by family, ``build_model`` and ``count_parameters``."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from torch import nn

from .cnn import CNNTrunk
from .ffn import FFNTrunk
from .families import is_multitask, network_family, trunk_family
from .finetune import FINETUNE_PARTS, FineTunedNets  # noqa: F401 (the registry's names)
from .lstm import LSTMTrunk
from .mtl import MultiHeadNet

TRUNKS = {"ffn": FFNTrunk, "cnn": CNNTrunk, "lstm": LSTMTrunk}


def build_model(
    family: str,
    config: Mapping[str, Any],
    input_length: int,
    class_counts: Sequence[int],
    n_channels: int = 1,
) -> MultiHeadNet:
    """Build trunk + heads for ``family`` from a (possibly partial) config.

    Args:
        family: one of FAMILIES (an ``ft-*`` family builds its stage-1 net with several
            class counts, one of its fine-tuned networks with one; "auto" builds the family
            named by ``config["auto_family"]``).
        config: hyperparameters (search-space keys; missing ones take defaults, extra
            ones such as ``lr`` are ignored).
        input_length: waveform samples per row (per channel).
        class_counts: classes per task; exactly one entry for single-task families.
        n_channels: channels per waveform: the CNN's input channels, the LSTM's features per
            sample, the FFN's inputs multiply by it.

    Returns:
        MultiHeadNet whose forward(x (batch, n_channels * input_length), task) gives
        (batch, class_counts[task]) logits.
    """
    family = network_family(family, config)  # "auto": the family its search chose
    trunk_cls = TRUNKS[trunk_family(family)]
    counts = list(class_counts)
    if not is_multitask(family) and len(counts) != 1:
        raise ValueError(
            f"family {family!r} is single-task and needs exactly one class count, got {counts}; "
            f"use 'mtl-{family}' or 'ft-{family}' to train on several datasets"
        )
    trunk = trunk_cls(int(input_length), config, n_channels=int(n_channels))
    return MultiHeadNet(
        trunk,
        counts,
        head_hidden=int(config.get("head_hidden", 0)),
        head_dropout=float(config.get("head_dropout", 0.0)),
    )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (elements of tensors with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
