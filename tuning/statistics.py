"""The project's statistics: intervals, the corrected resampled t-test, Holm, the Bayesian
correlated t-test, and the comparison's verdicts built on them.

Part 1, cross-validated scores.

Units: these functions are unit-agnostic; they return values in the units they are given
(the comparison passes fractions in [0, 1] to :func:`mean_ci` and differences in
percentage points to :func:`corrected_resampled_ttest`).

Why not a plain paired t-test over folds? In k-fold x repeats cross-validation the
training sets of different folds overlap (in 5-fold CV any two training sets share 3/4 of
their rows, and repeats re-use the same rows), so the per-fold scores are positively
correlated. A t-test that treats them as independent underestimates the variance of the
mean difference and reports "significant" far too often (Dietterich 1998; Nadeau &
Bengio 2003). Nadeau & Bengio's correction inflates the variance by the term
``n_test / n_train``, which approximates that correlation; Bouckaert & Frank (2004)
showed the corrected test over repeated k-fold CV keeps its nominal type-I error.

References:
    C. Nadeau and Y. Bengio, "Inference for the Generalization Error", Machine Learning
    52(3):239-281, 2003.
    R. R. Bouckaert and E. Frank, "Evaluating the Replicability of Significance Tests for
    Comparing Learning Algorithms", PAKDD 2004.
Part 2, the comparison (below the numeric tests).
Per pair of approaches on one dataset, the per-fold differences ``d_j`` (A minus B, in
percentage points, paired by ``(repeat, fold)``) get:

* the corrected resampled t-test (Nadeau & Bengio 2003; part 1 above), two-sided;
* Holm's adjustment over every test of a family (:func:`adjust`): the primary family is
  every (dataset, MTL family vs the single-task family with the same trunk) test on
  accuracy in one comparison run; any other family (the exploratory "vs the best
  single-task family", other metrics, learning-curve sizes) is adjusted within itself;
* the Bayesian correlated t-test (Corani & Benavoli 2015) with a region of practical
  equivalence ``[-rope, +rope]``: P(A better), P(practically equivalent), P(A worse).

The verdict of a pair (:func:`verdict`), in this order:

1. ``practically equivalent`` when P(equivalent) >= ``threshold`` (the difference, whatever
   its sign, is smaller than the ROPE with high posterior probability);
2. ``better`` / ``worse`` when the Holm-adjusted p < ``alpha``;
3. ``no detectable difference`` otherwise: the data cannot tell, which is *not* evidence
   of equivalence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats as _st

__all__ = ["mean_ci", "corrected_mean_ci", "corrected_resampled_ttest", "holm", "bayesian_correlated_ttest",
           "BETTER", "WORSE", "EQUIVALENT", "NO_DIFFERENCE", "VERDICTS", "paired_test", "adjust", "verdict",
           "DEFAULT_ALPHA", "DEFAULT_ROPE", "DEFAULT_THRESHOLD", "NOT_SHOWN", "REPLICATE_VERDICTS",
           "least_detectable_difference", "replicate_test", "replicate_verdict", "verdict_sentence"]


def _as_1d(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError(f"{name} is empty; need at least one value")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return arr


def _is_constant(arr: np.ndarray) -> bool:
    # Identical values can still give a variance of ~1e-33 after floating-point summation;
    # treat a spread at rounding level as zero so the "zero variance" rules below apply.
    return float(np.ptp(arr)) <= 1e-12 * max(1.0, float(np.abs(arr).max()))


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval of the mean.

    ``mean +- t_{(1+confidence)/2, n-1} * s / sqrt(n)`` with ``s`` the sample standard
    deviation (ddof=1). This is the plain interval over the given values; for
    cross-validation folds it is somewhat too narrow for the same reason given in the
    module docstring, and is meant as a description, not a test.

    Args:
        values: 1-D array-like of n >= 1 finite numbers (any unit; the result has the same).
        confidence: coverage in (0, 1).

    Returns:
        ``(mean, low, high)`` as floats; for n = 1 (or identical values) ``low == high == mean``.

    Raises:
        ValueError: empty input, NaN/inf, or confidence outside (0, 1).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    arr = _as_1d(values, "values")
    mean = float(arr.mean())
    if arr.size == 1 or _is_constant(arr):
        return mean, mean, mean
    sem = float(arr.std(ddof=1)) / math.sqrt(arr.size)
    half = float(_st.t.ppf(0.5 + confidence / 2.0, df=arr.size - 1)) * sem
    return mean, mean - half, mean + half


def corrected_resampled_ttest(diffs, n_train, n_test) -> tuple[float, float]:
    """Nadeau & Bengio (2003) corrected resampled t-test on paired per-fold differences.

    With ``J`` fold results ``d_j`` (score of A minus score of B on the same fold),
    ``t = mean(d) / sqrt(var(d) * (1/J + n_test/n_train))`` where ``var`` is the sample
    variance (ddof=1), and the two-sided p-value comes from Student's t with ``J - 1``
    degrees of freedom. The plain paired t-test uses ``var(d) / J``; the extra
    ``n_test / n_train`` term accounts for the correlation between folds whose training
    sets overlap (see the module docstring), so the test does not over-reject.

    Args:
        diffs: 1-D array-like of J paired differences, in any unit (the comparison uses
            percentage points); J >= 2 for a test.
        n_train: rows used to fit a model in one fold (scalar, or one value per fold, then
            averaged). For the networks this is training plus inner-validation rows: both
            shape the fitted model.
        n_test: rows scored in one fold (scalar or per fold, averaged).

    Returns:
        ``(t, p)``. All differences zero -> ``(0.0, 1.0)``; zero variance with a non-zero
        mean -> ``(+-inf, 0.0)``; J = 1 with a non-zero difference -> ``(nan, nan)``
        (no variance can be estimated).

    Raises:
        ValueError: empty or non-finite diffs, or non-positive sizes.
    """
    d = _as_1d(diffs, "diffs")
    n_tr = float(np.mean(_as_1d(n_train, "n_train")))
    n_te = float(np.mean(_as_1d(n_test, "n_test")))
    if n_tr <= 0 or n_te <= 0:
        raise ValueError(f"n_train and n_test must be positive, got {n_tr} and {n_te}")
    J = d.size
    mean = float(d.mean())
    if not d.any():
        return 0.0, 1.0
    if _is_constant(d):
        if J == 1:
            return math.nan, math.nan
        return math.copysign(math.inf, mean), 0.0
    var = float(d.var(ddof=1))
    t = mean / math.sqrt(var * (1.0 / J + n_te / n_tr))
    p = float(2.0 * _st.t.sf(abs(t), df=J - 1))
    return float(t), p


def corrected_mean_ci(values, n_train, n_test, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of cross-validated fold scores with a fold-correlation-corrected interval.

    The fold scores of one approach are correlated for the reason given in the module
    docstring, so the plain interval of :func:`mean_ci` is too narrow. This widens it the
    way Nadeau & Bengio's test does: ``mean +- t_{(1+confidence)/2, J-1} *
    sqrt(s^2 * (1/J + n_test/n_train))``.

    Args:
        values: 1-D array-like of J >= 1 fold scores (any unit; the result has the same).
        n_train, n_test: rows fitted / scored per fold (scalars or per fold, averaged).
        confidence: coverage in (0, 1).

    Returns:
        ``(mean, low, high)``; ``low == high == mean`` for J = 1 or identical values.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    arr = _as_1d(values, "values")
    ratio = _size_ratio(n_train, n_test)
    mean = float(arr.mean())
    if arr.size == 1 or _is_constant(arr):
        return mean, mean, mean
    scale = math.sqrt(float(arr.var(ddof=1)) * (1.0 / arr.size + ratio))
    half = float(_st.t.ppf(0.5 + confidence / 2.0, df=arr.size - 1)) * scale
    return mean, mean - half, mean + half


def _size_ratio(n_train, n_test) -> float:
    n_tr = float(np.mean(_as_1d(n_train, "n_train")))
    n_te = float(np.mean(_as_1d(n_test, "n_test")))
    if n_tr <= 0 or n_te <= 0:
        raise ValueError(f"n_train and n_test must be positive, got {n_tr} and {n_te}")
    return n_te / n_tr


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (Holm 1979).

    Sort the m p-values ascending, multiply the i-th (0-based) by ``m - i``, make the
    sequence non-decreasing (running maximum) and cap it at 1; return in the input order.
    Rejecting where the adjusted p < alpha controls the family-wise error rate at alpha
    under any dependence between the tests. NaN p-values are left NaN and not counted.
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    if valid.size == 0:
        return out
    order = valid[np.argsort(p[valid], kind="stable")]
    m = order.size
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out[order] = adjusted
    return out


def bayesian_correlated_ttest(diffs, n_train, n_test, rope: float) -> tuple[float, float, float]:
    """Bayesian correlated t-test for cross-validation (Corani & Benavoli 2015).

    The posterior of the mean difference is Student's t with ``J - 1`` degrees of
    freedom, location ``mean(d)`` and scale ``sqrt(s^2 * (1/J + rho/(1-rho)))``, where
    ``rho = n_test / (n_test + n_train)`` is the correlation between folds
    (``rho/(1-rho) = n_test/n_train``, the same correction as the frequentist test).
    This is ``baycomp.CorrelatedTTest`` (baycomp 1.0.3, Benavoli et al., JMLR 18(77),
    2017) with ``rho`` given by the fold sizes instead of ``1/k``; the tests check it
    against baycomp's own numbers.

    Args:
        diffs: J paired differences (A minus B), in the unit of ``rope``.
        n_train, n_test: rows fitted / scored per fold (scalars or per fold, averaged).
        rope: half-width of the region of practical equivalence, >= 0.

    Returns:
        ``(p_better, p_equivalent, p_worse)``: posterior probabilities that the true mean
        difference is above ``rope``, within ``[-rope, rope]``, below ``-rope``; they sum
        to 1. Zero variance puts all mass on the observed mean; J = 1 with a non-zero
        difference gives NaNs.

    References:
        G. Corani and A. Benavoli, "A Bayesian approach for comparing cross-validated
        algorithms on multiple data sets", Machine Learning 100:285-304, 2015.
        A. Benavoli, G. Corani, J. Demsar and M. Zaffalon, "Time for a change: a
        tutorial for comparing multiple classifiers through Bayesian analysis", JMLR
        18(77):1-36, 2017.
    """
    if rope < 0 or not math.isfinite(rope):
        raise ValueError(f"rope must be a finite number >= 0, got {rope!r}")
    d = _as_1d(diffs, "diffs")
    ratio = _size_ratio(n_train, n_test)
    mean = float(d.mean())
    if _is_constant(d):
        if d.size == 1 and mean != 0:
            return math.nan, math.nan, math.nan
        return float(mean > rope), float(-rope <= mean <= rope), float(mean < -rope)
    scale = math.sqrt(float(d.var(ddof=1)) * (1.0 / d.size + ratio))
    posterior = _st.t(df=d.size - 1, loc=mean, scale=scale)
    p_worse = float(posterior.cdf(-rope))
    p_better = float(posterior.sf(rope))
    return p_better, max(0.0, 1.0 - p_better - p_worse), p_worse


# ----------------------------------------------------------------------------------------
# The comparison's tests and verdicts
# ----------------------------------------------------------------------------------------
BETTER, WORSE = "better", "worse"
EQUIVALENT = "practically equivalent"
NO_DIFFERENCE = "no detectable difference"
VERDICTS = (BETTER, EQUIVALENT, NO_DIFFERENCE, WORSE)

DEFAULT_ALPHA = 0.05
DEFAULT_ROPE = 1.0        # percentage points of accuracy
DEFAULT_THRESHOLD = 0.95  # posterior probability needed for "practically equivalent"


def paired_test(diffs, n_train, n_test, *, rope: float = DEFAULT_ROPE, confidence: float = 0.95) -> dict:
    """Every statistic of one paired comparison.

    Args:
        diffs: J >= 1 per-fold differences, A minus B, in percentage points.
        n_train, n_test: rows fitted (training + inner validation) and scored per fold.
        rope: half-width of the region of practical equivalence, percentage points.
        confidence: coverage of the difference's corrected interval.

    Returns:
        ``mean_diff, diff_ci_low, diff_ci_high`` (points; the interval is corrected for
        the folds' correlation), ``t, p_value`` (corrected resampled t-test, two-sided),
        ``p_better, p_equivalent, p_worse`` (Bayesian correlated t-test) and ``n_pairs``.
    """
    d = np.asarray(diffs, dtype=np.float64)
    mean, low, high = corrected_mean_ci(d, n_train, n_test, confidence)
    t, p = corrected_resampled_ttest(d, n_train, n_test)
    p_better, p_equivalent, p_worse = bayesian_correlated_ttest(d, n_train, n_test, rope)
    return {"mean_diff": mean, "diff_ci_low": low, "diff_ci_high": high, "t": t, "p_value": p,
            "p_better": p_better, "p_equivalent": p_equivalent, "p_worse": p_worse, "n_pairs": int(d.size)}


def verdict(mean_diff: float, p_adjusted: float, p_equivalent: float, *, alpha: float = DEFAULT_ALPHA,
            threshold: float = DEFAULT_THRESHOLD) -> str:
    """One of :data:`VERDICTS` (see the module docstring for the rule)."""
    if p_equivalent is not None and not math.isnan(p_equivalent) and p_equivalent >= threshold:
        return EQUIVALENT
    if p_adjusted is None or math.isnan(p_adjusted) or p_adjusted >= alpha or mean_diff == 0:
        return NO_DIFFERENCE
    return BETTER if mean_diff > 0 else WORSE


def adjust(tests: pd.DataFrame, family_columns, *, alpha: float = DEFAULT_ALPHA,
           threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
    """Add ``p_adjusted`` (Holm within each group of ``family_columns``) and ``verdict``.

    Args:
        tests: rows of :func:`paired_test` results plus the grouping columns.
        family_columns: columns whose values name one family of tests (e.g.
            ``["comparison", "score"]``): Holm is applied over all rows of a family.
    """
    out = tests.copy()
    out["p_adjusted"] = np.nan
    if out.empty:
        out["verdict"] = pd.Series(dtype=object)
        return out
    for _, index in out.groupby(list(family_columns), sort=False, dropna=False).groups.items():
        out.loc[index, "p_adjusted"] = holm(out.loc[index, "p_value"].to_numpy(dtype=float))
    out["verdict"] = [verdict(m, p, e, alpha=alpha, threshold=threshold)
                      for m, p, e in zip(out["mean_diff"], out["p_adjusted"], out["p_equivalent"])]
    return out


# ----------------------------------------------------------------------------------------
# Replicates: whole pipelines compared pair by pair (the study's headline answer)
# ----------------------------------------------------------------------------------------
NOT_SHOWN = "not shown to differ"
REPLICATE_VERDICTS = (BETTER, EQUIVALENT, NOT_SHOWN, WORSE)
POWER = 0.8


def least_detectable_difference(sd: float, n: int, ratio: float, alpha: float, power: float = POWER) -> float:
    """The smallest true mean difference a two-sided corrected t-test at level ``alpha``
    detects with probability ``power``, given ``n`` paired differences of spread ``sd``.

    The test statistic is ``mean / (sd * sqrt(1/n + ratio))`` (``ratio``: n_test/n_train,
    0 for independent differences); under a true difference ``delta`` it follows a
    noncentral t with ``n - 1`` degrees of freedom and noncentrality ``delta / (sd *
    sqrt(1/n + ratio))``. Solved exactly (scipy's noncentral t), close to the textbook
    ``(t_{1-alpha/2} + t_{power}) * sd * sqrt(1/n + ratio)``. Same unit as ``sd``; NaN when
    ``n < 2``, ``sd`` is not finite, or ``sd == 0`` (no spread observed: nothing to size a
    test by, which with few replicates says more about the replicates than about the data).
    """
    if n < 2 or not math.isfinite(sd) or sd == 0:
        return math.nan
    from scipy.optimize import brentq

    df = n - 1
    scale = sd * math.sqrt(1.0 / n + ratio)
    critical = float(_st.t.ppf(1 - alpha / 2, df))

    def shortfall(noncentrality: float) -> float:
        reach = float(_st.nct.sf(critical, df, noncentrality) + _st.nct.cdf(-critical, df, noncentrality))
        return (1.0 if math.isnan(reach) else reach) - power  # NaN: far in the tail, where power is ~1

    upper = 2.0 * (critical + float(_st.t.ppf(power, df))) + 1.0  # past the root; nct stays finite there
    return float(brentq(shortfall, 0.0, upper, xtol=1e-10)) * scale


def replicate_test(diffs, n_train, n_test, *, alpha: float = DEFAULT_ALPHA, rope: float = DEFAULT_ROPE,
                   confidence: float = 0.95, detect_alpha: float | None = None) -> dict:
    """A against B over R replicates: ``diffs[r]`` is A's test score minus B's in replicate r
    (percentage points), both scored on that replicate's test rows after their own searches.

    What it assumes: the replicates are independent draws of the whole pipeline (seed, split,
    initialisation, data order, search) and the differences roughly normal (Student's t,
    R - 1 degrees of freedom). They are not quite independent: every replicate splits the
    same rows, so two replicates' test parts overlap. As for cross-validation folds, that
    correlation is taken into account with Nadeau & Bengio's corrected variance
    ``sd^2 (1/R + n_test/n_train)`` (their correction was made for exactly this case,
    repeated random train/test splits). It does not shrink below ``sd^2 n_test/n_train``
    however many replicates run.

    Returns a dict: ``n``, ``mean_diff``, ``sd_diff``, ``ci_low``/``ci_high`` (corrected
    ``confidence`` interval), ``p_value`` (two-sided, no difference), ``p_equivalence``
    (two one-sided tests against +-``rope``: the larger one-sided p; "practically
    equivalent" when it is below alpha, i.e. the corrected 1 - 2 alpha interval lies inside
    the ROPE), ``share_won`` (share of replicates with A ahead; ties count half) and
    ``least_detectable`` (the true difference this R detects with 80% power at the observed
    spread, at level ``detect_alpha``, default ``alpha``: give the strictest level the
    adjustment can use, alpha / m, to be safe).
    """
    d = _as_1d(diffs, "diffs")
    ratio = _size_ratio(n_train, n_test)
    n, mean = d.size, float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else math.nan
    won = float(((d > 0).sum() + 0.5 * (d == 0).sum()) / n)
    out = {"n": n, "mean_diff": mean, "sd_diff": sd, "share_won": won}
    if n < 2:
        return {**out, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan, "p_equivalence": math.nan,
                "least_detectable": math.nan}
    _, low, high = corrected_mean_ci(d, n_train, n_test, confidence)
    _, p = corrected_resampled_ttest(d, n_train, n_test)
    scale = math.sqrt(sd ** 2 * (1.0 / n + ratio))
    if scale == 0:  # identical differences: no spread to test against; no claim either way
        p_eq = math.nan
    else:  # H0: |true difference| >= rope, rejected when both one-sided tests reject
        p_eq = max(float(_st.t.sf((mean + rope) / scale, n - 1)), float(_st.t.cdf((mean - rope) / scale, n - 1)))
    return {**out, "ci_low": low, "ci_high": high, "p_value": p, "p_equivalence": p_eq,
            "least_detectable": least_detectable_difference(sd, n, ratio, detect_alpha or alpha)}


def replicate_verdict(mean_diff: float, p_adjusted: float, p_equivalence_adjusted: float, *,
                      alpha: float = DEFAULT_ALPHA) -> str:
    """The words a replicated comparison may use: ``better`` / ``worse`` only when the
    Holm-adjusted test says so, ``practically equivalent`` only when the (adjusted)
    equivalence test does, otherwise ``not shown to differ`` (never "did not help": an
    interval that includes zero also includes differences that would matter)."""
    if math.isfinite(p_adjusted) and p_adjusted < alpha:
        return BETTER if mean_diff > 0 else WORSE
    if math.isfinite(p_equivalence_adjusted) and p_equivalence_adjusted < alpha:
        return EQUIVALENT
    return NOT_SHOWN


def verdict_sentence(row: Mapping, approach: str, versus: str, rope: float) -> str:
    """One sentence for a replicated verdict: the words, the interval, the detectable size."""
    words = row["verdict"]
    interval = f"{row['mean_diff']:+.2f} points [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"
    if words in (BETTER, WORSE):
        head = f"{approach} {words} than {versus}: {interval}, Holm p = {row['p_adjusted']:.3g}"
    elif words == EQUIVALENT:
        head = f"{approach} practically equivalent to {versus} (within +-{rope:g} points): {interval}"
    else:
        head = f"{approach} not shown to differ from {versus}: {interval}"
    return (f"{head}; ahead in {100 * row['share_won']:.0f}% of {row['n']} replicates; "
            f"{row['n']} replicates detect {row['least_detectable']:.2f} points with 80% power")
