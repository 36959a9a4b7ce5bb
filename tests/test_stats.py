"""tuning.statistics and the comparison's verdicts: intervals, the corrected resampled t-test, Holm,
the Bayesian correlated t-test (against baycomp's numbers), and the false-call rate on
simulated null data whose fold scores are correlated as cross-validation makes them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from tuning import statistics as verdicts
from tuning.statistics import bayesian_correlated_ttest, corrected_mean_ci, corrected_resampled_ttest, holm, mean_ci


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


# --------------------------------------------------------------------------- corrected interval
def test_corrected_mean_ci_by_hand_and_wider_than_plain():
    values = np.array([0.91, 0.93, 0.90, 0.95, 0.92, 0.94])
    mean, low, high = corrected_mean_ci(values, n_train=400, n_test=100)
    half = st.t.ppf(0.975, 5) * math.sqrt(values.var(ddof=1) * (1 / 6 + 100 / 400))
    assert (mean, low, high) == pytest.approx((values.mean(), values.mean() - half, values.mean() + half))
    _, plain_low, plain_high = mean_ci(values)
    assert low < plain_low and high > plain_high
    assert corrected_mean_ci([0.8], 400, 100) == (0.8, 0.8, 0.8)


# --------------------------------------------------------------------------- Holm
def test_holm_by_hand():
    # m = 4: sorted 0.01, 0.02, 0.03, 0.04 -> x4, x3, x2, x1 = 0.04, 0.06, 0.06, 0.04 -> running max
    adjusted = holm([0.03, 0.01, 0.04, 0.02])
    assert adjusted == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    out = holm([0.01, float("nan"), 0.04])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)


# --------------------------------------------------------------------------- Bayesian correlated t-test
BAYCOMP_X = [0.81, 0.82, 0.80, 0.77, 0.82, 0.81, 0.79, 0.81, 0.80, 0.81, 0.80, 0.81, 0.79, 0.80, 0.79]
BAYCOMP_Y = [0.80, 0.81, 0.80, 0.78, 0.815, 0.80, 0.785, 0.79, 0.79, 0.83, 0.815, 0.81, 0.785, 0.79, 0.78]


@pytest.mark.parametrize("rope, expected", [
    # baycomp 1.0.3: baycomp.two_on_single(x, y, rope=rope, runs=3) (5-fold x 3, rho = 1/5), with
    # numpy 2.4.6 / scipy 1.17.1; rope=0 returns (P(x > y), P(x < y)).
    (0.01, (0.1456147805161449, 0.8315644859262735, 0.02282073355758152)),
    (0.005, (0.39396603938869024, 0.5100603833172098, 0.09597357729409994)),
    (0.0, (0.7039751310471175, 0.0, 0.2960248689528825)),
])
def test_bayesian_correlated_ttest_matches_baycomp(rope, expected):
    diffs = np.array(BAYCOMP_X) - np.array(BAYCOMP_Y)
    # rho = n_test / (n_test + n_train) = 1/5 <=> n_train / n_test = 4.
    got = bayesian_correlated_ttest(diffs, n_train=4, n_test=1, rope=rope)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert sum(got) == pytest.approx(1.0)


def test_bayesian_correlated_ttest_edge_cases():
    assert bayesian_correlated_ttest([0.0] * 5, 4, 1, rope=1.0) == (0.0, 1.0, 0.0)
    assert bayesian_correlated_ttest([3.0] * 5, 4, 1, rope=1.0) == (1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="rope"):
        bayesian_correlated_ttest([1.0, 2.0], 4, 1, rope=-1)


# --------------------------------------------------------------------------- calibration under the null
def correlated_null_diffs(rng, n_datasets, folds=5, repeats=3, sd=2.0):
    """Per-fold differences with no true effect but the correlation of overlapping training
    sets: every pair of folds correlated rho = n_test / n = 1 / folds (Nadeau & Bengio's model)."""
    rho = 1.0 / folds
    shared = rng.normal(0.0, 1.0, (n_datasets, 1))
    own = rng.normal(0.0, 1.0, (n_datasets, folds * repeats))
    return sd * (math.sqrt(rho) * shared + math.sqrt(1.0 - rho) * own), (folds - 1) / 1.0


def test_false_better_or_worse_rate_stays_near_alpha_on_correlated_null_data():
    rng = np.random.default_rng(20240601)
    diffs, train_over_test = correlated_null_diffs(rng, 3000)
    n_train, n_test = 100.0 * train_over_test, 100.0
    false_calls = plain_calls = 0
    for d in diffs:
        r = verdicts.paired_test(d, n_train, n_test, rope=1.0)
        v = verdicts.verdict(r["mean_diff"], r["p_value"], r["p_equivalent"], alpha=0.05)
        false_calls += v in (verdicts.BETTER, verdicts.WORSE)
        plain_calls += st.ttest_1samp(d, 0.0).pvalue < 0.05
    rate, plain_rate = false_calls / len(diffs), plain_calls / len(diffs)
    assert 0.03 <= rate <= 0.065, rate            # near alpha = 0.05 (sd of the estimate ~0.004)
    assert plain_rate > 0.25, plain_rate          # the plain paired t-test over-rejects badly


def test_holm_keeps_the_familywise_error_near_alpha():
    rng = np.random.default_rng(7)
    runs, family = 400, 10
    diffs, train_over_test = correlated_null_diffs(rng, runs * family)
    p = np.array([corrected_resampled_ttest(d, 100.0 * train_over_test, 100.0)[1] for d in diffs]).reshape(runs, family)
    any_raw = (p < 0.05).any(axis=1).mean()
    any_holm = np.array([(holm(row) < 0.05).any() for row in p]).mean()
    assert any_holm <= 0.08, any_holm
    assert any_raw > 0.3, any_raw  # ten uncorrected tests: about 1 - 0.95**10 = 0.40
