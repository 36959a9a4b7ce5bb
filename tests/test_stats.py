"""tuning.stats: t-intervals and the Nadeau & Bengio corrected resampled t-test, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from tuning.stats import corrected_resampled_ttest, mean_ci


def test_mean_ci_by_hand():
    # [1, 2, 3]: mean 2, s = 1, n = 3. Student t with 2 dof has the closed-form cdf
    # 1/2 + t / (2 sqrt(t^2 + 2)), so its 0.975 quantile solves t / sqrt(t^2 + 2) = 0.95.
    t975 = math.sqrt(2 * 0.95**2 / (1 - 0.95**2))
    assert t975 == pytest.approx(4.302652729911275)
    half = t975 / math.sqrt(3)
    mean, low, high = mean_ci([1.0, 2.0, 3.0])
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))


def test_mean_ci_other_confidence_matches_scipy():
    values = np.array([0.91, 0.93, 0.90, 0.95, 0.92])
    mean, low, high = mean_ci(values, confidence=0.9)
    ref = st.t.interval(0.9, df=4, loc=values.mean(), scale=st.sem(values))
    assert mean == pytest.approx(values.mean())
    assert (low, high) == pytest.approx(ref)


def test_mean_ci_single_and_constant_values():
    assert mean_ci([0.7]) == (0.7, 0.7, 0.7)
    mean, low, high = mean_ci([0.1 + 0.2] * 15)  # rounding-level spread counts as none
    assert low == high == mean


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [1.0, float("inf")]])
def test_mean_ci_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        mean_ci(bad)


def test_mean_ci_rejects_bad_confidence():
    with pytest.raises(ValueError):
        mean_ci([1.0, 2.0], confidence=1.0)


def test_corrected_ttest_by_hand():
    # diffs [1, 2, 3]: mean 2, var 1, J = 3; n_test / n_train = 1/4.
    # corrected variance = 1 * (1/3 + 1/4) = 7/12 -> t = 2 / sqrt(7/12), t^2 = 48/7.
    # Two-sided p with 2 dof: 1 - t / sqrt(t^2 + 2) = 1 - sqrt(24/31).
    t, p = corrected_resampled_ttest([1.0, 2.0, 3.0], n_train=4, n_test=1)
    assert t == pytest.approx(2.0 / math.sqrt(7.0 / 12.0))
    assert p == pytest.approx(1.0 - math.sqrt(24.0 / 31.0))
    assert p == pytest.approx(2 * st.t.sf(t, df=2))


def test_corrected_ttest_sign_and_symmetry():
    t, p = corrected_resampled_ttest([-1.0, -2.0, -3.0], 4, 1)
    t2, p2 = corrected_resampled_ttest([1.0, 2.0, 3.0], 4, 1)
    assert t == pytest.approx(-t2) and p == pytest.approx(p2)


def test_corrected_ttest_reduces_to_paired_ttest_without_overlap():
    # With n_test / n_train -> 0 the correction vanishes: the plain one-sample t-test.
    diffs = np.array([0.5, 1.5, -0.2, 2.0, 0.9, 1.1])
    t, p = corrected_resampled_ttest(diffs, n_train=1e15, n_test=1)
    ref = st.ttest_1samp(diffs, 0.0)
    assert t == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)


def test_correction_is_more_conservative_than_plain_ttest():
    diffs = np.array([0.5, 1.5, -0.2, 2.0, 0.9, 1.1, 0.4, 1.3, 0.8, 1.0])
    t, p = corrected_resampled_ttest(diffs, n_train=800, n_test=200)
    ref = st.ttest_1samp(diffs, 0.0)
    assert abs(t) < abs(ref.statistic) and p > ref.pvalue
    # Exactly: t shrinks by sqrt((1/J) / (1/J + n_test/n_train)).
    assert t == pytest.approx(ref.statistic * math.sqrt(0.1 / (0.1 + 0.25)))


def test_corrected_ttest_per_fold_sizes_are_averaged():
    a = corrected_resampled_ttest([1.0, 2.0, 3.0], n_train=[3, 4, 5], n_test=[1, 1, 1])
    b = corrected_resampled_ttest([1.0, 2.0, 3.0], n_train=4, n_test=1)
    assert a == pytest.approx(b)


def test_corrected_ttest_degenerate_cases():
    assert corrected_resampled_ttest([0.0] * 5, 100, 25) == (0.0, 1.0)
    assert corrected_resampled_ttest([0.0], 100, 25) == (0.0, 1.0)
    assert corrected_resampled_ttest([2.0] * 5, 100, 25) == (math.inf, 0.0)
    assert corrected_resampled_ttest([-2.0] * 5, 100, 25) == (-math.inf, 0.0)
    t, p = corrected_resampled_ttest([0.1 + 0.2] * 15, 100, 25)
    assert t == math.inf and p == 0.0
    t, p = corrected_resampled_ttest([1.5], 100, 25)  # one fold: no variance to estimate
    assert math.isnan(t) and math.isnan(p)


@pytest.mark.parametrize("kwargs", [
    {"diffs": [], "n_train": 10, "n_test": 2},
    {"diffs": [1.0, float("nan")], "n_train": 10, "n_test": 2},
    {"diffs": [1.0, 2.0], "n_train": 0, "n_test": 2},
    {"diffs": [1.0, 2.0], "n_train": 10, "n_test": -1},
])
def test_corrected_ttest_rejects_bad_input(kwargs):
    with pytest.raises(ValueError):
        corrected_resampled_ttest(**kwargs)
