"""Multi-channel waveform columns: the ``ch{c}_s{t}`` naming convention.

A multi-channel dataset names every waveform column ``ch{c}_s{t}``: channel ``c`` (0-based)
and sample ``t`` (0-based), e.g. ``ch0_s0 ... ch0_s47, ch1_s0 ... ch3_s47`` for 4 channels of
48 samples. Columns may come in any order; the loader puts them channel-major
(``ch0_s0..ch0_s{T-1}, ch1_s0, ...``), so a row of ``Dataset.X`` is the ``(C, T)`` waveform
flattened, and ``X.reshape(n_rows, C, T)`` gives it back. Files whose waveform columns are
not named this way are single-channel, exactly as before (any names, file order).

Every channel must have the same samples: the names must form the full grid
``c = 0..C-1`` x ``t = 0..T-1``, each once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tuning.errors import InputError

__all__ = ["CHANNEL_COLUMN", "column_name", "column_names", "channel_layout", "channel_grid"]

#: A multi-channel column name: ``ch{channel}_s{sample}``, case-insensitive.
CHANNEL_COLUMN = re.compile(r"ch(\d+)_s(\d+)", re.IGNORECASE)


def column_name(channel: int, sample: int) -> str:
    """``column_name(2, 5) == "ch2_s5"``."""
    return f"ch{channel}_s{sample}"


def column_names(n_channels: int, n_samples: int) -> list[str]:
    """Channel-major column names of a ``(n_channels, n_samples)`` waveform.

    One channel gets the plain single-channel names ``s0 .. s{T-1}`` (the shipped files'
    header), so an extremum-channel import looks like any other dataset.
    """
    if n_channels == 1:
        return [f"s{t}" for t in range(n_samples)]
    return [column_name(c, t) for c in range(n_channels) for t in range(n_samples)]


def channel_layout(path: str | Path, names: Sequence[str]) -> tuple[int, np.ndarray | None]:
    """The channel count of waveform columns ``names`` and the order that makes them channel-major.

    Returns:
        ``(n_channels, order)``: ``order`` indexes ``names`` (``X[:, order]`` is channel-major),
        or ``None`` when the columns are already in that order (or single-channel).

    Raises:
        InputError: some but not all columns follow ``ch{c}_s{t}``, a (channel, sample) pair
            appears twice, or the grid has holes (channels of different lengths).
    """
    matches = [CHANNEL_COLUMN.fullmatch(name.strip()) for name in names]
    named = [m is not None for m in matches]
    if not any(named):
        return 1, None
    if not all(named):
        odd = next(name for name, ok in zip(names, named) if not ok)
        raise InputError(
            f"{path}: column {odd!r} does not follow the multi-channel naming ch<channel>_s<sample> "
            "that other waveform columns use; name every waveform column that way (ch0_s0, ch0_s1, "
            "..., ch1_s0, ...) or none of them"
        )
    pairs = [(int(m.group(1)), int(m.group(2))) for m in matches]
    return channel_grid(path, names, pairs)


def channel_grid(path: str | Path, names: Sequence[str], pairs: Sequence[tuple[int, int]]) -> tuple[int, np.ndarray | None]:
    """Check that ``pairs`` (channel, sample) of columns ``names`` fill the grid ``C x T`` once each.

    Returns ``(n_channels, order)`` as :func:`channel_layout`; InputError naming the columns
    for a repeated pair or a hole.
    """
    seen: dict[tuple[int, int], str] = {}
    for name, pair in zip(names, pairs):
        if pair in seen:
            raise InputError(f"{path}: columns {seen[pair]!r} and {name!r} are both channel {pair[0]}, "
                             f"sample {pair[1]}; name each (channel, sample) once")
        seen[pair] = name
    n_channels = max(c for c, _ in pairs) + 1
    n_samples = max(t for _, t in pairs) + 1
    if n_channels * n_samples != len(pairs):
        missing = next((c, t) for c in range(n_channels) for t in range(n_samples) if (c, t) not in seen)
        raise InputError(
            f"{path}: multi-channel columns need every channel 0..{n_channels - 1} with every sample "
            f"0..{n_samples - 1}, but {column_name(*missing)} is missing (channel {missing[0]}, sample "
            f"{missing[1]}); every channel must have the same samples"
        )
    order = np.array(sorted(range(len(pairs)), key=lambda k: pairs[k]), dtype=np.int64)
    if np.array_equal(order, np.arange(len(pairs))):
        return n_channels, None
    return n_channels, order
