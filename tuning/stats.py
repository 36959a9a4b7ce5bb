"""Confidence intervals and the corrected resampled t-test for cross-validated scores.

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
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as _st

__all__ = ["mean_ci", "corrected_resampled_ttest"]


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
