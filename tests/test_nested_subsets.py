"""Learning-curve subsets (the replicated study's curves): the sizes asked for, stratified, nested."""

from __future__ import annotations

import numpy as np
import pytest

from tuning.data.splits import nested_subset


def labels(counts):
    return np.concatenate([np.full(n, c) for c, n in enumerate(counts)]).astype(np.int64)


def test_nested_subset_sizes_per_class_and_nesting():
    y = labels([200, 60, 11])
    rows = np.arange(y.size)[::-1].copy()  # order of the input does not matter
    subsets = {f: nested_subset(y, rows, f, (3, 1, 0)) for f in (0.1, 0.25, 0.5, 1.0)}
    for f, subset in subsets.items():
        counts = np.bincount(y[subset], minlength=3)
        assert list(counts) == [max(1, int(np.floor(n * f + 0.5))) for n in (200, 60, 11)]
        assert np.all(np.diff(subset) > 0)  # sorted, no duplicates
    assert set(subsets[0.1]) <= set(subsets[0.25]) <= set(subsets[0.5]) <= set(subsets[1.0]) == set(rows)
    assert not np.array_equal(nested_subset(y, rows, 0.25, (3, 1, 0)), nested_subset(y, rows, 0.25, (4, 1, 0)))
    with pytest.raises(ValueError, match="fraction"):
        nested_subset(y, rows, 0.0, (0,))
