"""Calibrated probabilities: temperature scaling (Guo et al., 2017) and the expected
calibration error.

Temperature scaling divides a network's logits by one scalar ``T > 0`` before the softmax,
chosen to minimise the negative log-likelihood of held-out rows. It leaves every argmax,
hence every predicted label and every accuracy, unchanged; it only makes the confidence
mean what it says (of spikes predicted with confidence 0.9, about 90% are right).
"""

from __future__ import annotations

import numpy as np

ECE_BINS = 15
"""Equal-width confidence bins of the expected calibration error (Guo et al. use 15)."""

_LOG_T_BOUNDS = (-4.0, 4.0)  # T in [0.018, 55]: far beyond any useful temperature


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` in float64, shape (rows, classes)."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def negative_log_likelihood(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean cross-entropy of ``softmax(logits / temperature)`` against class ids ``y``."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(y)), y]))


def expected_calibration_error(probabilities: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: sum over equal-width confidence bins of |accuracy - mean confidence| x share of rows.

    ``probabilities`` (rows, classes); ``y`` int class ids (rows,). A fraction in [0, 1].
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(y)
    if len(y) == 0:
        return 0.0
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == y
    # Bin b holds confidences in (b/bins, (b+1)/bins]; confidence >= 1/classes > 0.
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    error = 0.0
    for b in np.unique(which):
        members = which == b
        error += abs(correct[members].mean() - confidence[members].mean()) * members.mean()
    return float(error)


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the NLL of ``logits`` (rows, classes) against ``y``.

    A bounded one-dimensional search over ``log T`` (the NLL is smooth in it); 1.0 when
    there are no rows.
    """
    if len(y) == 0:
        return 1.0
    from scipy.optimize import minimize_scalar

    result = minimize_scalar(lambda log_t: negative_log_likelihood(logits, y, float(np.exp(log_t))),
                             bounds=_LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))
