"""Stratified, seeded splits of one dataset's rows.

All functions take ``y``, an integer array ``(n_rows,)`` of class ids (any integers; only
equality matters), and return int64 index arrays into the rows, sorted ascending.
Every function is a pure function of its arguments: no global random state is read or
changed, so a dataset's splits do not depend on which other datasets are in the run
(multi-task code calls these per dataset with the same seed).

* :func:`tuning_split`: the one fixed train / validation / test split used while tuning
  (trials see train and validation only) and for the "one split" rerun.
* :func:`cv_folds`: the "full split" evaluation, stratified k-fold x repeats. Repeat ``r``
  shuffles with ``seed + r``; inside each fold an inner validation part for early stopping
  is drawn from the outer training part only, never from the scored fold.
* :func:`fold_assignment`: which fold scores each row, per repeat, as a table stored with
  the results so other approaches can reuse the same folds.

The within-class allocation used for ``tuning_split`` and the inner validation part puts
``round(n_c * fraction)`` rows of class ``c`` in each part (at least one when the fraction
is positive and the class has enough rows) and the rest in train, so every part holds
every class whenever each class has at least :func:`min_rows_per_class` rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Split", "Fold", "tuning_split", "cv_folds", "min_rows_per_class", "fold_assignment"]


# eq=False: generated equality would compare arrays elementwise and fail.
@dataclass(frozen=True, eq=False)
class Split:
    """Row indices (int64, sorted, disjoint, together covering every row)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


@dataclass(frozen=True, eq=False)
class Fold:
    """One fold of one repeat of the cross-validation.

    Attributes:
        repeat: repeat index ``r`` (0-based).
        fold: fold index within the repeat (0-based).
        seed: the repeat's seed, ``seed + r``; it shuffled the folds and seeds (with
            ``fold``) the inner validation draw. Trainers may use it to seed model init.
        train: rows used to fit (outer training part minus the inner validation part).
        val: inner validation rows (early stopping), drawn from the outer training part.
        test: the scored held-out fold.
    """

    repeat: int
    fold: int
    seed: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def _check_y(y) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (n_rows,), got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must hold integer class ids, got dtype {y.dtype}")
    return y


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_fraction(name: str, value: float) -> float:
    if not (0.0 <= value < 1.0):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def _n_part(n: int, fraction: float) -> int:
    """Rows of a class of size n that go to a part of the given fraction."""
    if fraction <= 0.0:
        return 0
    # Half-up rounding (Python's round() rounds half to even); at least one row so every
    # class is represented in the part.
    return max(1, int(math.floor(n * fraction + 0.5)))


def _stratified_parts(
    y: np.ndarray, idx: np.ndarray, fractions: tuple[float, ...], rng: np.random.Generator
) -> list[np.ndarray]:
    """Split rows ``idx`` into ``1 + len(fractions)`` sorted parts, stratified by ``y[idx]``.

    Part 0 (train) takes the remainder. Per class, the parts are filled in order; when a
    class is too small, later parts get fewer rows so that train keeps at least one row.
    """
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    labels = y[idx]
    for c in np.unique(labels):  # sorted: the draw order, hence the result, is fixed
        members = idx[labels == c]
        members = members[rng.permutation(members.size)]
        start = 0
        for p, frac in enumerate(fractions, start=1):
            take = min(_n_part(members.size, frac), max(0, members.size - 1 - start))
            parts[p].append(members[start : start + take])
            start += take
        parts[0].append(members[start:])
    return [np.sort(np.concatenate(p)).astype(np.int64) if p else np.empty(0, np.int64) for p in parts]


def tuning_split(y, seed: int, val_fraction: float = 0.15, test_fraction: float = 0.15) -> Split:
    """The fixed train / validation / test split used for tuning.

    Args:
        y: int array ``(n_rows,)`` of class ids.
        seed: non-negative integer; the same ``(y, seed, fractions)`` give the same split.
        val_fraction, test_fraction: share of each class in validation and test
            (rounded per class, at least one row each); train takes the rest.

    Returns:
        A :class:`Split` of sorted int64 row indices, disjoint, covering every row.

    Raises:
        ValueError: bad fractions or seed, or a class with fewer than 3 rows (it could not
            appear in all three parts).
    """
    y = _check_y(y)
    seed = _check_seed(seed)
    val_fraction = _check_fraction("val_fraction", val_fraction)
    test_fraction = _check_fraction("test_fraction", test_fraction)
    if val_fraction + test_fraction >= 1.0:
        raise ValueError("val_fraction + test_fraction must be below 1 so that train is not empty")
    classes, counts = np.unique(y, return_counts=True)
    need = 1 + (val_fraction > 0) + (test_fraction > 0)
    if counts.size and counts.min() < need:
        c = classes[np.argmin(counts)]
        raise ValueError(f"class {c} has {counts.min()} rows; tuning_split needs at least {need} per class")
    rng = np.random.default_rng(seed)
    # Test is drawn first so that changing val_fraction leaves the test rows unchanged.
    train, test, val = _stratified_parts(y, np.arange(y.size), (test_fraction, val_fraction), rng)
    return Split(train=train, val=val, test=test)


def min_rows_per_class(n_folds: int) -> int:
    """Smallest class size for which :func:`cv_folds` and :func:`tuning_split` never fail.

    With at least this many rows per class, every class appears in every scored fold, in
    every inner validation part and every training part, and in all three parts of the
    tuning split. Pass it to :func:`tuning.data.readers.load_dataset` as ``min_rows_per_class``.
    Equals ``n_folds`` for ``n_folds >= 3``, and 4 for ``n_folds == 2``.
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    n = max(int(n_folds), 3)  # 3: one row each for train / val / test in tuning_split
    # A scored fold takes at most ceil(n / k) rows of a class; the outer training part
    # keeps the rest, which needs two rows (inner train + inner validation).
    while n - math.ceil(n / n_folds) < 2:
        n += 1
    return n


def cv_folds(
    y, n_folds: int = 5, n_repeats: int = 3, seed: int = 0, inner_val_fraction: float = 0.15
) -> list[Fold]:
    """Repeated stratified k-fold with an inner validation part in every fold.

    Repeat ``r`` uses ``StratifiedKFold(n_folds, shuffle=True, random_state=seed + r)``.
    In fold ``f`` of repeat ``r`` the outer training part is split, stratified, into
    ``train`` and ``val`` (``inner_val_fraction`` of each class, at least one row) with a
    generator seeded from ``(seed + r, f)``; ``test`` is the scored fold. Hence repeat
    ``r`` of ``cv_folds(y, seed=s)`` equals repeat 0 of ``cv_folds(y, seed=s + r)``.

    Args:
        y: int array ``(n_rows,)`` of class ids.
        n_folds: folds per repeat (>= 2).
        n_repeats: number of repeats (>= 1).
        seed: non-negative integer.
        inner_val_fraction: share of each class of the outer training part used for
            early stopping, in [0, 1).

    Returns:
        ``n_repeats * n_folds`` :class:`Fold` objects ordered by ``(repeat, fold)``.

    Raises:
        ValueError: bad arguments, or a class with fewer than ``min_rows_per_class(n_folds)``
            rows (load the data with that minimum and this cannot happen).
    """
    y = _check_y(y)
    seed = _check_seed(seed)
    need = min_rows_per_class(n_folds)
    if isinstance(n_repeats, bool) or not isinstance(n_repeats, (int, np.integer)) or n_repeats < 1:
        raise ValueError(f"n_repeats must be an integer >= 1, got {n_repeats!r}")
    inner_val_fraction = _check_fraction("inner_val_fraction", inner_val_fraction)
    classes, counts = np.unique(y, return_counts=True)
    if counts.size and counts.min() < need:
        c = classes[np.argmin(counts)]
        raise ValueError(
            f"class {c} has {counts.min()} rows; {n_folds}-fold CV needs at least {need} per class"
        )
    from sklearn.model_selection import StratifiedKFold  # on use: keeps input validation fast

    folds: list[Fold] = []
    for r in range(int(n_repeats)):
        rseed = seed + r
        skf = StratifiedKFold(n_splits=int(n_folds), shuffle=True, random_state=rseed)
        for f, (outer_train, test) in enumerate(skf.split(np.zeros((y.size, 1)), y)):
            rng = np.random.default_rng([rseed, f])
            train, val = _stratified_parts(y, np.sort(outer_train), (inner_val_fraction,), rng)
            folds.append(
                Fold(repeat=r, fold=f, seed=rseed, train=train, val=val, test=np.sort(test).astype(np.int64))
            )
    return folds


def fold_assignment(folds: list[Fold], n_rows: int) -> "pd.DataFrame":
    """Which fold scores each row, per repeat.

    Returns:
        A DataFrame with ``n_rows`` rows and columns ``row`` (0..n_rows-1) and, for each
        repeat ``r`` in ``folds``, ``f"repeat{r}_fold"`` (int64): the index of the fold
        whose ``test`` part holds that row.

    Raises:
        ValueError: a row scored twice or never within one repeat, or an index out of range.
    """
    repeats = sorted({fold.repeat for fold in folds})
    table = {"row": np.arange(n_rows, dtype=np.int64)}
    for r in repeats:
        col = np.full(n_rows, -1, dtype=np.int64)
        for fold in folds:
            if fold.repeat != r:
                continue
            test = np.asarray(fold.test)
            if test.size and (test.min() < 0 or test.max() >= n_rows):
                raise ValueError(f"repeat {r} fold {fold.fold}: test index out of range for {n_rows} rows")
            if (col[test] != -1).any():
                raise ValueError(f"repeat {r}: a row is scored in more than one fold")
            col[test] = fold.fold
        if (col == -1).any():
            raise ValueError(f"repeat {r}: {(col == -1).sum()} rows are scored in no fold")
        table[f"repeat{r}_fold"] = col
    import pandas as pd  # on use: the CLI validates input before the heavy imports

    return pd.DataFrame(table)


def nested_subset(y: np.ndarray, rows: np.ndarray, fraction: float, seed: Sequence[int]) -> np.ndarray:
    """A stratified subset of ``rows`` holding ``fraction`` of each class, nested across fractions.

    Args:
        y: int array ``(n_rows,)`` of class ids of the whole dataset.
        rows: int64 indices into ``y`` (e.g. one fold's training rows).
        fraction: in (0, 1]; per class ``max(1, round(n_c * fraction))`` rows are kept.
        seed: seeds the per-class order; the same seed gives nested subsets for any
            two fractions (a prefix of one permutation).

    Returns:
        Sorted int64 indices, a subset of ``rows``.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    rows = np.asarray(rows, dtype=np.int64)
    rng = np.random.default_rng(list(seed))
    kept = []
    for c in np.unique(y[rows]):  # sorted: the draw order, hence the subset, is fixed
        members = np.sort(rows[y[rows] == c])
        members = members[rng.permutation(members.size)]
        take = max(1, int(np.floor(members.size * fraction + 0.5)))
        kept.append(members[:take])
    return np.sort(np.concatenate(kept)).astype(np.int64) if kept else rows[:0]
