"""LSTM trunk: the waveform read as a sequence.

Config keys (all optional; defaults in brackets):
    lstm_hidden        hidden size per direction (search space: 16-128)          [64]
    lstm_layers        stacked LSTM layers (search space: 1-3)                    [1]
    bidirectional      run a backward LSTM as well                                [False]
    dropout            between stacked layers (only when layers > 1) and on the output [0.0]
    lstm_readout       "last" (final hidden state) | "mean" (mean over time steps) ["last"]
    lstm_input_stride  1 | 2 | 4: samples per time step                           [1]

With stride s the (batch, length) input becomes (batch, ceil(length/s), s): s consecutive
samples are one step's features and the tail is zero-padded. With C channels a step holds
those s samples of every channel (s * C features). Fewer steps make the
sequential recurrence s times shorter, which is what dominates LSTM time on a CPU.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ._common import as_channels, get_bool, get_dropout, get_int

READOUTS = ("last", "mean")


class LSTMTrunk(nn.Module):
    """LSTM over waveform chunks.

    Input: float tensor (batch, n_channels * length) channel-major, or (batch, n_channels,
    length); any length >= 1. Output: (batch, out_features)
    with out_features = lstm_hidden * (2 if bidirectional else 1).
    """

    def __init__(self, input_length: int, config: Mapping[str, Any], n_channels: int = 1):
        super().__init__()
        if int(input_length) < 1 or int(n_channels) < 1:
            raise ValueError(f"input_length and n_channels must be >= 1, got {input_length}, {n_channels}")
        self.input_length = int(input_length)  # kept for the record; any length works
        self.n_channels = int(n_channels)
        hidden = get_int(config, "lstm_hidden", 64, minimum=1)
        layers = get_int(config, "lstm_layers", 1, minimum=1)
        self.bidirectional = get_bool(config, "bidirectional", False)
        dropout = get_dropout(config)
        self.stride = get_int(config, "lstm_input_stride", 1, minimum=1)
        self.readout = str(config.get("lstm_readout", "last")).lower()
        if self.readout not in READOUTS:
            raise ValueError(
                f"config['lstm_readout'] = {self.readout!r}; choose one of {list(READOUTS)}"
            )
        self.lstm = nn.LSTM(
            input_size=self.stride * self.n_channels,
            hidden_size=hidden,
            num_layers=layers,
            batch_first=True,
            # torch warns (and does nothing) for inter-layer dropout with one layer.
            dropout=dropout if layers > 1 else 0.0,
            bidirectional=self.bidirectional,
        )
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.num_directions = 2 if self.bidirectional else 1
        self.out_features = hidden * self.num_directions

    def _to_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, C * length) or (batch, C, length) -> (batch, ceil(length / stride), stride * C)."""
        x = as_channels(x, self.n_channels, "LSTMTrunk")
        pad = (-x.shape[2]) % self.stride
        if pad:
            x = F.pad(x, (0, pad))
        steps = x.reshape(x.shape[0], self.n_channels, -1, self.stride)  # (batch, C, steps, s)
        return steps.permute(0, 2, 3, 1).reshape(x.shape[0], steps.shape[2], -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, n_channels * length) -> (batch, out_features)."""
        out, (h_n, _) = self.lstm(self._to_sequence(x))
        if self.readout == "mean":
            feat = out.mean(dim=1)  # (batch, hidden * directions)
        else:
            # h_n: (layers * directions, batch, hidden). The last layer's states are the
            # final step of the forward pass and, if bidirectional, the first step of the
            # backward pass: the summary each direction has seen the whole waveform for.
            last = h_n[-self.num_directions:]
            feat = last.transpose(0, 1).reshape(x.shape[0], -1)
        return self.dropout(feat)

    def last_block_parameters(self) -> list[nn.Parameter]:
        """The last stacked LSTM layer's weights, both directions (what "last block" fine-tunes)."""
        last = f"_l{self.lstm.num_layers - 1}"
        return [p for name, p in self.lstm.named_parameters() if name.endswith((last, last + "_reverse"))]
