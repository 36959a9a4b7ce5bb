"""Fully connected trunk over the raw waveform samples.

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

    Input: float tensor (batch, input_length). Output: (batch, out_features), where
    out_features is the width of the last hidden layer. The input length is fixed at
    construction (a Linear layer needs it).
    """

    def __init__(self, input_length: int, config: Mapping[str, Any]):
        super().__init__()
        if int(input_length) < 1:
            raise ValueError(f"input_length must be >= 1, got {input_length}")
        self.input_length = int(input_length)
        n_layers = get_int(config, "ffn_n_layers", 2, minimum=1)
        dropout = get_dropout(config)
        batch_norm = get_bool(config, "batch_norm", False)
        activation = config.get("activation", "relu")

        layers: list[nn.Module] = []
        width = self.input_length
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
        """(batch, input_length) -> (batch, out_features)."""
        check_input(x, "FFNTrunk")
        if x.shape[1] != self.input_length:
            raise ValueError(
                f"FFNTrunk was built for waveforms of {self.input_length} samples, "
                f"got {x.shape[1]}; resample or pad the data, or rebuild the model"
            )
        return self.layers(x)
