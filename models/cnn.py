"""1-D convolutional trunk over the waveform; a probe's channels are its input channels.

Config keys (all optional; defaults in brackets):
    cnn_n_blocks      number of conv blocks, >= 1 (search space: 1-4)              [2]
    cnn_channels_b{i} output channels of block i, i = 0 .. cnn_n_blocks-1     [16, 32, 64, 64]
    cnn_kernel_b{i}   kernel size of block i ("same" padding; the space uses 3/5/7/9) [5]
    cnn_pool          "max" | "avg" | "none": kernel-2 pooling between blocks       ["max"]
    batch_norm        BatchNorm1d after each conv (and the dense layer)             [False]
    dropout           dropout after each block and after the dense layer            [0.0]
    cnn_global_pool   "avg" | "max" | "flatten": how the last feature map becomes a vector ["avg"]
    cnn_dense_units   width of an optional dense layer after global pooling; 0 = none [0]
    activation        "relu" | "gelu" | "elu"                                      ["relu"]

A block is Conv1d -> [BatchNorm] -> activation -> [Dropout]. Pooling sits between blocks
(not after the last one, where global pooling follows) and is skipped once the feature
map is shorter than 4 samples, so any input length >= 1 gives a valid network.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from ._common import as_channels, get_bool, get_dropout, get_int, make_activation
from .ffn import _from_last

POOLS = ("max", "avg", "none")
GLOBAL_POOLS = ("avg", "max", "flatten")
_DEFAULT_CHANNELS = (16, 32, 64, 64)


def _choice(config: Mapping[str, Any], key: str, default: str, allowed: tuple[str, ...]) -> str:
    value = str(config.get(key, default)).lower()
    if value not in allowed:
        raise ValueError(f"config[{key!r}] = {value!r}; choose one of {list(allowed)}")
    return value


class CNNTrunk(nn.Module):
    """Conv blocks + global pooling (+ optional dense layer).

    Input: float tensor (batch, n_channels * input_length), channel-major, or
    (batch, n_channels, input_length); the channels are the first conv's input channels.
    Output: (batch, out_features) with
    out_features = cnn_dense_units if > 0, else the last block's channels (avg/max
    global pooling) or channels * final feature-map length ("flatten").
    """

    def __init__(self, input_length: int, config: Mapping[str, Any], n_channels: int = 1):
        super().__init__()
        if int(input_length) < 1 or int(n_channels) < 1:
            raise ValueError(f"input_length and n_channels must be >= 1, got {input_length}, {n_channels}")
        self.input_length = int(input_length)
        self.n_channels = int(n_channels)
        n_blocks = get_int(config, "cnn_n_blocks", 2, minimum=1)
        pool = _choice(config, "cnn_pool", "max", POOLS)
        global_pool = _choice(config, "cnn_global_pool", "avg", GLOBAL_POOLS)
        dense_units = get_int(config, "cnn_dense_units", 0, minimum=0)
        batch_norm = get_bool(config, "batch_norm", False)
        dropout = get_dropout(config)
        activation = config.get("activation", "relu")

        layers: list[nn.Module] = []
        in_ch, length = self.n_channels, self.input_length
        for i in range(n_blocks):
            default_ch = _DEFAULT_CHANNELS[min(i, len(_DEFAULT_CHANNELS) - 1)]
            out_ch = get_int(config, f"cnn_channels_b{i}", default_ch, minimum=1)
            kernel = get_int(config, f"cnn_kernel_b{i}", 5, minimum=1)
            layers.append(
                nn.Conv1d(in_ch, out_ch, kernel, padding="same", bias=not batch_norm)
            )
            if batch_norm:
                layers.append(nn.BatchNorm1d(out_ch))
            layers.append(make_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            # Pool between blocks only, and only while the map is long enough that
            # halving it leaves >= 2 samples: short waveforms still build.
            if i < n_blocks - 1 and pool != "none" and length >= 4:
                layers.append(nn.MaxPool1d(2) if pool == "max" else nn.AvgPool1d(2))
                length //= 2
            in_ch = out_ch
        self.blocks = nn.Sequential(*layers)
        self.final_length = length  # feature-map length for the built input length

        if global_pool == "avg":
            self.global_pool: nn.Module = nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Flatten())
            width = in_ch
        elif global_pool == "max":
            self.global_pool = nn.Sequential(nn.AdaptiveMaxPool1d(1), nn.Flatten())
            width = in_ch
        else:
            # Adaptive pooling to the built final length is the identity for the built
            # input length, and keeps the flattened size fixed if another length arrives.
            self.global_pool = nn.Sequential(nn.AdaptiveAvgPool1d(length), nn.Flatten())
            width = in_ch * length

        if dense_units > 0:
            dense: list[nn.Module] = [nn.Linear(width, dense_units, bias=not batch_norm)]
            if batch_norm:
                dense.append(nn.BatchNorm1d(dense_units))
            dense.append(make_activation(activation))
            if dropout > 0:
                dense.append(nn.Dropout(dropout))
            self.dense: nn.Module = nn.Sequential(*dense)
            width = dense_units
        else:
            self.dense = nn.Identity()
        self.out_features = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, n_channels * length) -> (batch, out_features)."""
        h = self.blocks(as_channels(x, self.n_channels, "CNNTrunk"))  # (batch, C_in, length) -> (batch, C, final_length)
        return self.dense(self.global_pool(h))

    def last_block_parameters(self) -> list[nn.Parameter]:
        """The last layer with weights and its BatchNorm: the dense layer if there is one,
        else the last conv block (what "last block" fine-tunes)."""
        if isinstance(self.dense, nn.Sequential):
            return list(self.dense.parameters())
        return _from_last(self.blocks, nn.Conv1d)
