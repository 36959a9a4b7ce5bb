"""tuning.data.splits: disjointness, coverage, stratification, determinism, fold bookkeeping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tuning.data.splits import Fold, Split, cv_folds, fold_assignment, min_rows_per_class, tuning_split

# Imbalanced like A12 (scaled down): 6 classes.
COUNTS = [128, 97, 81, 60, 45, 38]


def make_y(counts=COUNTS, seed=0):
    y = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(y)


def assert_index_array(a, n):
    assert isinstance(a, np.ndarray) and a.dtype == np.int64 and a.ndim == 1
    assert (np.diff(a) > 0).all()  # sorted, no duplicates
    assert a.size == 0 or (a.min() >= 0 and a.max() < n)


# ---------------------------------------------------------------- tuning_split


def test_tuning_split_disjoint_and_covering():
    y = make_y()
    s = tuning_split(y, seed=0)
    assert isinstance(s, Split)
    for part in (s.train, s.val, s.test):
        assert_index_array(part, y.size)
    assert not set(s.train) & set(s.val) and not set(s.train) & set(s.test) and not set(s.val) & set(s.test)
    assert np.array_equal(np.sort(np.concatenate([s.train, s.val, s.test])), np.arange(y.size))


def test_tuning_split_stratified():
    y = make_y()
    s = tuning_split(y, seed=3, val_fraction=0.15, test_fraction=0.15)
    for c, n in enumerate(COUNTS):
        for part, frac in ((s.val, 0.15), (s.test, 0.15)):
            assert abs((y[part] == c).sum() - n * frac) <= 1
    assert abs(s.test.size - 0.15 * y.size) <= len(COUNTS)


def test_tuning_split_deterministic_and_seeded():
    y = make_y()
    a, b, c = tuning_split(y, 7), tuning_split(y.copy(), 7), tuning_split(y, 8)
    for part in ("train", "val", "test"):
        assert np.array_equal(getattr(a, part), getattr(b, part))
    assert not np.array_equal(a.test, c.test)


def test_tuning_split_ignores_global_random_state():
    y = make_y()
    np.random.seed(1)
    a = tuning_split(y, 0)
    np.random.seed(2)
    np.random.rand(10)
    assert np.array_equal(a.test, tuning_split(y, 0).test)


def test_tuning_split_every_class_in_every_part_at_minimum():
    y = make_y([3, 3, 50])
    s = tuning_split(y, 0)
    for part in (s.train, s.val, s.test):
        assert set(y[part]) == {0, 1, 2}


def test_tuning_split_rejects_bad_arguments():
    y = make_y()
    with pytest.raises(ValueError):
        tuning_split(y, 0, val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError):
        tuning_split(y, -1)
    with pytest.raises(ValueError):
        tuning_split(make_y([2, 10]), 0)


# ---------------------------------------------------------------- cv_folds


@pytest.fixture(scope="module")
def y_and_folds():
    y = make_y()
    return y, cv_folds(y, n_folds=5, n_repeats=3, seed=11)


def test_cv_folds_order_and_types(y_and_folds):
    y, folds = y_and_folds
    assert len(folds) == 15
    assert [(f.repeat, f.fold) for f in folds] == [(r, k) for r in range(3) for k in range(5)]
    assert [f.seed for f in folds] == [11] * 5 + [12] * 5 + [13] * 5
    for f in folds:
        assert isinstance(f, Fold)
        for part in (f.train, f.val, f.test):
            assert_index_array(part, y.size)


def test_cv_folds_parts_disjoint_and_cover(y_and_folds):
    y, folds = y_and_folds
    for f in folds:
        train, val, test = set(f.train), set(f.val), set(f.test)
        assert not train & val and not train & test and not val & test
        assert len(train | val | test) == y.size


def test_cv_folds_inner_val_never_touches_scored_fold(y_and_folds):
    _, folds = y_and_folds
    for f in folds:
        assert np.intersect1d(f.val, f.test).size == 0
        assert np.intersect1d(f.train, f.test).size == 0


def test_cv_folds_test_parts_partition_each_repeat(y_and_folds):
    y, folds = y_and_folds
    for r in range(3):
        tests = np.concatenate([f.test for f in folds if f.repeat == r])
        assert np.array_equal(np.sort(tests), np.arange(y.size))


def test_cv_folds_stratified(y_and_folds):
    y, folds = y_and_folds
    for f in folds:
        for c, n in enumerate(COUNTS):
            assert abs((y[f.test] == c).sum() - n / 5) <= 1
            outer = n - (y[f.test] == c).sum()
            assert abs((y[f.val] == c).sum() - 0.15 * outer) <= 1


def test_cv_folds_repeats_differ(y_and_folds):
    _, folds = y_and_folds
    assert not np.array_equal(folds[0].test, folds[5].test)
    assert not np.array_equal(folds[5].test, folds[10].test)


def test_cv_folds_deterministic(y_and_folds):
    y, folds = y_and_folds
    np.random.seed(123)  # global state must not matter
    again = cv_folds(y.copy(), n_folds=5, n_repeats=3, seed=11)
    for a, b in zip(folds, again):
        assert (a.repeat, a.fold, a.seed) == (b.repeat, b.fold, b.seed)
        for part in ("train", "val", "test"):
            assert np.array_equal(getattr(a, part), getattr(b, part))


def test_fold_i_same_for_same_seed_whatever_else(y_and_folds):
    """Fold i of a dataset depends only on (y, seed, ...): not on other datasets or repeats."""
    y, folds = y_and_folds
    other = make_y([40, 40], seed=5)
    cv_folds(other, seed=11)  # a second dataset split in between changes nothing
    fewer = cv_folds(y, n_folds=5, n_repeats=1, seed=11)
    for a, b in zip(folds[:5], fewer):
        assert np.array_equal(a.test, b.test) and np.array_equal(a.val, b.val)
    # repeat r with seed s is repeat 0 with seed s + r
    shifted = cv_folds(y, n_folds=5, n_repeats=1, seed=13)
    for a, b in zip(folds[10:], shifted):
        assert np.array_equal(a.test, b.test) and np.array_equal(a.train, b.train)
        assert a.seed == b.seed == 13


def test_cv_folds_rejects_too_small_class():
    with pytest.raises(ValueError, match="at least 5"):
        cv_folds(make_y([4, 20]), n_folds=5)


@pytest.mark.parametrize("k", [2, 3, 4, 5, 7, 10])
def test_min_rows_per_class_is_enough(k):
    need = min_rows_per_class(k)
    assert need >= k and need >= 3
    y = make_y([need, need + 1, 3 * need])
    for f in cv_folds(y, n_folds=k, n_repeats=2, seed=0):
        for part in (f.train, f.val, f.test):
            assert set(y[part]) == {0, 1, 2}
    s = tuning_split(y, 0)
    for part in (s.train, s.val, s.test):
        assert set(y[part]) == {0, 1, 2}


def test_min_rows_per_class_values():
    assert min_rows_per_class(5) == 5  # load_dataset's default minimum
    assert min_rows_per_class(2) == 4
    assert min_rows_per_class(3) == 3
    with pytest.raises(ValueError):
        min_rows_per_class(1)


# ---------------------------------------------------------------- fold_assignment


def test_fold_assignment(y_and_folds):
    y, folds = y_and_folds
    table = fold_assignment(folds, y.size)
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["row", "repeat0_fold", "repeat1_fold", "repeat2_fold"]
    assert table["row"].tolist() == list(range(y.size))
    for f in folds:
        assert (table.loc[f.test, f"repeat{f.repeat}_fold"] == f.fold).all()
    for r in range(3):
        assert table[f"repeat{r}_fold"].dtype == np.int64
        assert sorted(table[f"repeat{r}_fold"].unique()) == [0, 1, 2, 3, 4]


def test_fold_assignment_rejects_inconsistent_folds(y_and_folds):
    y, folds = y_and_folds
    with pytest.raises(ValueError):
        fold_assignment(folds[:4], y.size)  # repeat 0 misses fold 4's rows
    with pytest.raises(ValueError):
        fold_assignment(folds + folds[:1], y.size)  # a row scored twice
    with pytest.raises(ValueError):
        fold_assignment(folds, y.size - 1)  # indices out of range
