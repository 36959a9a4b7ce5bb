"""Learning-curve subsets: the sizes asked for, stratified, nested, on the full-split folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tuning.study import comparison
from tuning.data.readers import Dataset
from tuning.study.learning_curves import curve_jobs, nested_subset
from tuning.data.splits import cv_folds


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


def test_curve_jobs_use_the_full_split_folds_with_nested_training_rows():
    rng = np.random.default_rng(0)
    y1, y2 = labels([120, 80]), labels([50, 50, 40])
    datasets = [Dataset(name=n, path=None, X=rng.normal(size=(y.size, 8)), y=y, class_names=tuple(map(str, np.unique(y))),
                        label_column="label") for n, y in (("D1", y1), ("D2", y2))]
    fractions = (0.1, 0.25, 0.5, 1.0)
    jobs = curve_jobs(datasets, seed=5, folds=3, repeats=2, inner_val_fraction=0.15, fractions=fractions)
    assert len(jobs) == 3 * 3 * 2  # 100% is the exported full split, not rerun
    folds = {d.name: {(f.repeat, f.fold): f for f in cv_folds(d.y, 3, 2, 5, 0.15)} for d in datasets}
    by_key = {}
    for job in jobs:
        fraction = float(job.kind.split(":")[1])
        for d, train, val, test in zip(datasets, job.train, job.val, job.test):
            fold = folds[d.name][(job.repeat, job.fold)]
            assert np.array_equal(test, fold.test)  # the same scored rows
            assert set(train) <= set(fold.train) and set(val) <= set(fold.val)
            for part, full in ((train, fold.train), (val, fold.val)):
                want = [max(1, int(np.floor(n * fraction + 0.5))) for n in np.bincount(d.y[full])]
                assert list(np.bincount(d.y[part], minlength=len(want))) == want
            by_key[(d.name, job.repeat, job.fold, fraction)] = (set(train), set(val))
    for (name, r, f, fraction), (train, val) in by_key.items():
        for bigger in (x for x in fractions if fraction < x < 1.0):
            assert train <= by_key[(name, r, f, bigger)][0] and val <= by_key[(name, r, f, bigger)][1]


def test_curve_verdicts_per_fraction():
    # MTL equal to single-task with lots of data, +6 points at 10%: "better" only there.
    rows = []
    rng = np.random.default_rng(1)
    for fraction, gain in ((0.1, 0.06), (1.0, 0.0)):
        shared = 0.8 + rng.normal(0, 0.02, 6)
        for approach, family, extra in (("Classic CNN PyTorch", "cnn", 0.0), ("Feature Based MTL CNN", "mtl-cnn", gain)):
            for i in range(6):
                rows.append({"dataset": "A2", "approach": approach, "family": family, "fraction": fraction,
                             "repeat": i // 3, "fold": i % 3, "seed": i // 3, "n_train": int(400 * fraction),
                             "n_val": int(70 * fraction), "n_test": 150,
                             "accuracy": shared[i] + extra + rng.normal(0, 0.002),
                             "balanced_accuracy": 0.8, "macro_f1": 0.8, "experiment": "x"})
    points, tests = comparison.compare_curves(pd.DataFrame(rows))
    assert list(tests["fraction"]) == [0.1, 1.0]
    assert list(tests["verdict"]) == ["better", "practically equivalent"]
    assert list(tests["training_spikes"]) == [40 + 7, 400 + 70]
    assert len(points) == 4 and set(points["kind"]) == {"single-task", "multi-task"}
