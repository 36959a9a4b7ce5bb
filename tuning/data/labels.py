"""Labels as the lab writes them -> class names and class ids: the one canonicalisation.

Training (:func:`map_labels`, through the loaders) and ``predict`` (:func:`canonical_label`,
matching an input's labels to a bundle's classes) both go through :func:`canonical_label`,
so the two can never name the same cell differently: if they did, ``predict`` would score a
lab's spikes against the wrong classes.

Rules:

* A label is the cell without surrounding spaces. An empty cell or ``nan`` (any case; what
  pandas writes for a missing value) is *missing*: training refuses it, ``predict`` leaves
  the row out of its scores.
* When every label of a set is a finite number, labels are compared by value and named by
  their canonical form: ``"1"``, ``"1.0"``, ``"01"``, ``"1e0"`` are all class ``"1"``;
  ``"2.5"`` stays ``"2.5"``. Classes are then in numeric order (``"7"`` before ``"12"``).
* Otherwise (one label that is not a finite number is enough) labels are plain strings,
  in string order: ``"1"`` and ``"1.0"`` are then two classes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["LABEL_COLUMN_NAMES", "is_missing", "label_number", "all_numeric", "canonical_label", "map_labels"]

#: Column names (compared case-insensitively) taken as the label column, first match wins.
LABEL_COLUMN_NAMES = ("label", "track", "class", "unit", "y")

# Label cells that mean "no label": pandas writes a missing value as an empty cell or "nan".
_MISSING = {"", "nan"}


def is_missing(label: str) -> bool:
    """True for an empty label cell or ``nan`` (any case, surrounding spaces ignored)."""
    return label.strip().lower() in _MISSING


def label_number(label: str) -> float | None:
    """The label's value when it is a finite number (``" 2 "`` -> 2.0), else ``None``."""
    try:
        value = float(label)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def all_numeric(labels: Iterable[str]) -> bool:
    """True when every label is a finite number: the set is then compared by value."""
    return all(label_number(label) is not None for label in labels)


def canonical_label(label: str, numeric: bool) -> str:
    """The class name a label cell stands for; ``""`` when it is missing.

    Args:
        label: the cell as read (surrounding spaces allowed).
        numeric: whether the label set it belongs to is numeric (:func:`all_numeric` of the
            training labels, or of a bundle's class names).
    """
    label = label.strip()
    if label.lower() in _MISSING:
        return ""
    if numeric:
        value = label_number(label)
        if value is not None:
            return str(int(value)) if value.is_integer() else repr(value)
    return label


def map_labels(labels: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Training labels -> ``(class ids, class names)``.

    Args:
        labels: one cell per row, none missing (the loaders refuse missing labels first).

    Returns:
        int64 array ``(len(labels),)`` of class ids ``0..K-1``, and the K class names:
        ``class_names[k]`` is the canonical label of class ``k`` (see the module docstring).
    """
    unique = set(labels)
    numeric = all_numeric(unique)
    canonical = {s: canonical_label(s, numeric) for s in unique}
    names = set(canonical.values())
    class_names = tuple(sorted(names, key=lambda name: label_number(name)) if numeric else sorted(names))
    ids = {name: k for k, name in enumerate(class_names)}
    lookup = {s: ids[name] for s, name in canonical.items()}
    return np.fromiter((lookup[s] for s in labels), dtype=np.int64, count=len(labels)), class_names
