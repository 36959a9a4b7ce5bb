"""Which columns of a waveform CSV are waveform samples: the one rule, for training and ``predict``.

Waveform columns are found by their names, not by elimination, so that the columns sorter
exports and lab notebooks keep beside the waveforms (``spike_time``, ``channel``,
``amplitude``, ...) are never read as samples:

1. ``--columns PATTERN`` when given: a name template in which ``{t}`` stands for the sample
   number and ``{c}`` (optional) for the channel number, everything else literal and
   compared case-insensitively: ``wave_{t}``, ``e{c}_t{t}``. Every column it matches is a
   waveform column.
2. else ``ch{c}_s{t}`` (the multi-channel convention, :mod:`tuning.data.channels`) when any
   column is named so;
3. else ``s{t}`` (the shipped files' ``s0 .. s47``) when any column is named so;
4. else the largest group of two or more columns named *text + number* with the same text
   (``wave_1 .. wave_48``, ``t0 .. t63``; bare numbers ``0 .. 47`` are the group with no
   text); a tie between groups is no pattern;
5. else (no numbered names at all, such as ``a, b, c``) every column but the label, as
   before this rule.

With a pattern, every column that is neither the label nor a waveform column is a
*metadata* column: skipped by training, copied beside each prediction by ``predict``.
The numbers give each sample its place (columns may come in any order): single-channel
numbers must run without a hole (``s0, s1, s3`` lacks ``s2``), multi-channel ones must fill
the channel x sample grid. Metadata columns may sit before or after the waveform columns but
not between them (a file whose columns were shifted or interleaved is refused rather than
guessed at); the label column may sit anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tuning.data.channels import CHANNEL_COLUMN, channel_grid
from tuning.errors import InputError

__all__ = ["ColumnLayout", "waveform_columns", "check_pattern"]

#: The tool's own single-channel names (what ``import`` writes for one channel).
SAMPLE_TEMPLATE = "s{t}"
CHANNEL_TEMPLATE = "ch{c}_s{t}"
_NUMBERED = re.compile(r"(.*?)(\d+)")


@dataclass(frozen=True)
class ColumnLayout:
    """Where a header's waveform samples are.

    Attributes:
        waveform: header indices of the waveform columns, in sample order: channel-major
            for several channels, so ``row[waveform]`` is a ``(n_channels, n_samples)``
            waveform flattened.
        metadata: header indices of the other columns that are not the label, file order.
        n_channels: channels per waveform (1 unless the names carry a channel number).
        pattern: the template that named the waveform columns (``"s{t}"``, ``"ch{c}_s{t}"``,
            ``"wave_{t}"``, ``"{t}"`` for bare numbers, or the ``--columns`` one); ``None``
            when no pattern was found and every column but the label is a sample.
        waveform_names, metadata_names: the header's names of those columns, same order.
    """

    waveform: list[int]
    metadata: list[int]
    n_channels: int
    pattern: str | None
    waveform_names: tuple[str, ...] = ()
    metadata_names: tuple[str, ...] = ()


def check_pattern(pattern: str, option: str = "--columns") -> re.Pattern:
    """The regular expression of a ``--columns`` template; InputError when it is malformed."""
    pieces = re.split(r"(\{[^{}]*\})", pattern.strip())
    fields, literals = pieces[1::2], pieces[0::2]
    if (fields.count("{t}") != 1 or fields.count("{c}") > 1 or set(fields) - {"{t}", "{c}"}
            or any("{" in text or "}" in text for text in literals)):
        raise InputError(
            f"{option} {pattern!r}: give a column-name template with {{t}} once for the sample number and "
            "optionally {c} once for the channel number, e.g. 'wave_{t}' or 'e{c}_t{t}'"
        )
    regex = "".join(re.escape(p) if k % 2 == 0 else r"(?P<t>\d+)" if p == "{t}" else r"(?P<c>\d+)"
                    for k, p in enumerate(pieces))
    return re.compile(regex, re.IGNORECASE)


def waveform_columns(path: str | Path, header: Sequence[str], label_j: int | None,
                     pattern: str | None = None) -> ColumnLayout:
    """Apply the rule (module docstring) to ``header`` whose label column is ``label_j``.

    Args:
        path: the file, for messages.
        header: the column names (surrounding spaces already stripped).
        label_j: the label column's index, or ``None`` for a file without labels.
        pattern: the ``--columns`` template, or ``None`` for rules 2-5.

    Raises:
        InputError: one line naming the file: the template matches no column, a sample
            number is missing or repeated, a metadata column sits between waveform columns,
            or multi-channel names do not fill their grid.
    """
    candidates = [j for j in range(len(header)) if j != label_j]
    if pattern is not None:
        regex = check_pattern(pattern)
        matched = {j: m for j in candidates if (m := regex.fullmatch(header[j]))}
        if not matched:
            shown = ", ".join(header) if len(header) <= 8 else ", ".join([*header[:4], "...", *header[-3:]])
            raise InputError(f"{path}: no column matches --columns {pattern!r}; the columns are {shown}: "
                             "give the template of the waveform columns' names (e.g. 'wave_{t}')")
        numbers = {j: (int(m.group("c")) if "c" in regex.groupindex else 0, int(m.group("t")))
                   for j, m in matched.items()}
        return _layout(path, header, label_j, numbers, pattern.strip(), "c" in regex.groupindex)
    channel_named = {j: m for j in candidates if (m := CHANNEL_COLUMN.fullmatch(header[j]))}
    if channel_named:
        numbers = {j: (int(m.group(1)), int(m.group(2))) for j, m in channel_named.items()}
        return _layout(path, header, label_j, numbers, CHANNEL_TEMPLATE, True)
    groups: dict[str, dict[int, tuple[int, int]]] = {}
    for j in candidates:
        m = _NUMBERED.fullmatch(header[j])
        if m is not None:
            groups.setdefault(m.group(1).lower(), {})[j] = (0, int(m.group(2)))
    if "s" in groups:
        return _layout(path, header, label_j, groups["s"], SAMPLE_TEMPLATE, False)
    ranked = sorted(groups.items(), key=lambda item: len(item[1]), reverse=True)
    if ranked and len(ranked[0][1]) >= 2 and (len(ranked) == 1 or len(ranked[1][1]) < len(ranked[0][1])):
        prefix, group = ranked[0]
        text = header[next(iter(group))][:len(prefix)]  # the prefix as the file spells it
        return _layout(path, header, label_j, group, text + "{t}", False)
    return _named(header, ColumnLayout(candidates, [], 1, None))


def _named(header: Sequence[str], layout: ColumnLayout) -> ColumnLayout:
    return ColumnLayout(layout.waveform, layout.metadata, layout.n_channels, layout.pattern,
                        tuple(header[j] for j in layout.waveform), tuple(header[j] for j in layout.metadata))


def _layout(path, header: Sequence[str], label_j: int | None, numbers: dict[int, tuple[int, int]],
            pattern: str, multichannel: bool) -> ColumnLayout:
    """The layout of waveform columns ``{header index: (channel, sample)}`` named by ``pattern``."""
    indices = list(numbers)
    if multichannel:
        n_channels, order = channel_grid(path, [header[j] for j in indices], [numbers[j] for j in indices])
        waveform = indices if order is None else [indices[k] for k in order]
    else:
        n_channels, waveform = 1, _sample_run(path, header, {j: t for j, (_, t) in numbers.items()}, pattern)
    chosen = set(waveform)
    between = [j for j in range(min(chosen), max(chosen)) if j not in chosen and j != label_j]
    if between:
        j = between[0]
        before = max(k for k in chosen if k < j)
        after = min(k for k in chosen if k > j)
        raise InputError(
            f"{path}: column {header[j]!r} (field {j + 1}) sits between the waveform columns {header[before]!r} and "
            f"{header[after]!r} ({pattern}); put metadata columns before or after the waveform columns, or "
            "name the waveform columns with --columns"
        )
    metadata = [j for j in range(len(header)) if j not in chosen and j != label_j]
    return _named(header, ColumnLayout(waveform, metadata, n_channels, pattern))


def _sample_run(path, header: Sequence[str], numbers: dict[int, int], pattern: str) -> list[int]:
    """Single-channel columns ``{header index: sample number}`` in sample order, once each, no hole."""
    seen: dict[int, int] = {}
    for j, t in numbers.items():
        if t in seen:
            raise InputError(f"{path}: columns {header[seen[t]]!r} and {header[j]!r} are both sample {t} of the "
                             f"waveform columns ({pattern}); name each sample once")
        seen[t] = j
    first, last = min(seen), max(seen)
    missing = next((t for t in range(first, last + 1) if t not in seen), None)
    if missing is not None:
        raise InputError(f"{path}: the waveform columns ({pattern}) run from {header[seen[first]]!r} to "
                         f"{header[seen[last]]!r} but sample {missing} has no column; every sample needs one")
    return [seen[t] for t in range(first, last + 1)]
