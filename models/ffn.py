"""Fully connected trunk over the raw waveform samples (all channels, flattened).

Config keys (all optional; defaults in brackets):
    ffn_n_layers   number of hidden layers, >= 1 (search space: 1-4)        [2]
    ffn_units_l{i} width of hidden layer i, i = 0 .. ffn_n_layers-1          [64]
    dropout        dropout probability after every hidden layer             [0.0]
    batch_norm     BatchNorm1d after each Linear (before the activation)    [False]
    activation     "relu" | "gelu" | "elu"                                  ["relu"]
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from ._common import check_input, get_bool, get_dropout, get_int, make_activation


class FFNTrunk(nn.Module):
    """Stack of Linear -> [BatchNorm] -> activation -> Dropout layers.

    Input: float tensor (batch, n_channels * input_length), channel-major, or
    (batch, n_channels, input_length), flattened. Output: (batch, out_features), where
    out_features is the width of the last hidden layer. The input length is fixed at
    construction (a Linear layer needs it).
    """

    def __init__(self, input_length: int, config: Mapping[str, Any], n_channels: int = 1):
        super().__init__()
        if int(input_length) < 1 or int(n_channels) < 1:
            raise ValueError(f"input_length and n_channels must be >= 1, got {input_length}, {n_channels}")
        self.input_length = int(input_length)
        self.n_channels = int(n_channels)
        n_layers = get_int(config, "ffn_n_layers", 2, minimum=1)
        dropout = get_dropout(config)
        batch_norm = get_bool(config, "batch_norm", False)
        activation = config.get("activation", "relu")

        layers: list[nn.Module] = []
        width = self.input_length * self.n_channels
        for i in range(n_layers):
            units = get_int(config, f"ffn_units_l{i}", 64, minimum=1)
            # No Linear bias when BatchNorm follows: BN's shift makes it redundant.
            layers.append(nn.Linear(width, units, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(units))
            layers.append(make_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = units
        self.layers = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, n_channels * input_length) -> (batch, out_features)."""
        if x.dim() == 3:
            x = x.flatten(1)
        check_input(x, "FFNTrunk")
        if x.shape[1] != self.input_length * self.n_channels:
            channels = f" x {self.n_channels} channels" if self.n_channels > 1 else ""
            raise ValueError(
                f"FFNTrunk was built for waveforms of {self.input_length} samples{channels}, "
                f"got {x.shape[1]} values; resample or pad the data, or rebuild the model"
            )
        return self.layers(x)

    def last_block_parameters(self) -> list[nn.Parameter]:
        """The last hidden layer's Linear and its BatchNorm (what "last block" fine-tunes)."""
        return _from_last(self.layers, nn.Linear)


def _from_last(sequence: nn.Sequential, kind: type) -> list[nn.Parameter]:
    """Parameters of the last ``kind`` module in ``sequence`` and of every module after it."""
    modules = list(sequence)
    start = max(i for i, m in enumerate(modules) if isinstance(m, kind))
    return [p for m in modules[start:] for p in m.parameters()]
