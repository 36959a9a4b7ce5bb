"""Statistics and verdicts of the comparison, on plain arrays and tables.

Per pair of approaches on one dataset, the per-fold differences ``d_j`` (A minus B, in
percentage points, paired by ``(repeat, fold)``) get:

* the corrected resampled t-test (Nadeau & Bengio 2003; :mod:`tuning.stats`), two-sided;
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

import numpy as np
import pandas as pd

from tuning.stats import bayesian_correlated_ttest, corrected_mean_ci, corrected_resampled_ttest, holm

__all__ = ["BETTER", "WORSE", "EQUIVALENT", "NO_DIFFERENCE", "VERDICTS", "paired_test", "adjust", "verdict",
           "DEFAULT_ALPHA", "DEFAULT_ROPE", "DEFAULT_THRESHOLD"]

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
