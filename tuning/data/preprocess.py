"""Waveform normalisation and resampling.

Arrays are ``(n_rows, n_samples)``: one waveform per row, time along the last axis, in the
file's units (microvolts for the shipped data). Outputs are new float32 arrays; inputs are
never modified in place, so read-only arrays (e.g. shared through Ray's object store) are
fine. A multi-channel row is its ``(n_channels, n_samples)`` waveform flattened channel-major
(:mod:`tuning.data.channels`).

Normalisation is a search-space choice (:data:`NORMALISATIONS`):

* ``"none"``: values as loaded.
* ``"per_waveform"``: each row minus its own mean, divided by its own standard deviation
  (population std, floored at 1e-6 so a flat row becomes zeros). Fits nothing; it removes
  amplitude differences, which can carry class information, hence it is only an option.
  On a multi-channel row the statistics span all of the spike's channels, so the amplitude
  ratios between channels (what tells neighbouring units apart on a probe) are kept.
* ``"global"``: one mean and one standard deviation over all training rows and time
  points (a z-score that keeps relative amplitudes), fitted on the training part of a
  split only and applied unchanged to validation and test rows. Multi-channel: one mean and
  std over every channel too (a per-channel z-score would inflate the noise of far channels).

A fitted :class:`Normaliser` round-trips through :meth:`Normaliser.state` /
:meth:`Normaliser.from_state` (plain JSON types) so checkpoints can store it.

:func:`resample_to_length` brings datasets of different waveform lengths to one length for
multi-task networks (policy: every dataset is resampled to the longest length, by linear
interpolation over the same time window).
"""

from __future__ import annotations

import numpy as np

__all__ = ["NORMALISATIONS", "Normaliser", "resample_to_length"]

#: Normalisation modes accepted by :class:`Normaliser`.
NORMALISATIONS = ("none", "per_waveform", "global")

# Floor on a standard deviation: avoids division by zero on flat waveforms or data.
_STD_FLOOR = 1e-6


class Normaliser:
    """Scale waveforms by one of :data:`NORMALISATIONS`; fit on training rows only.

    Example::

        norm = Normaliser("global").fit(X[split.train])
        X_train, X_val = norm.transform(X[split.train]), norm.transform(X[split.val])
    """

    def __init__(self, mode: str):
        if mode not in NORMALISATIONS:
            raise ValueError(f"unknown normalisation {mode!r}; choose one of {', '.join(NORMALISATIONS)}")
        self.mode = mode
        self.mean: float | None = None  # "global" only, in the data's units
        self.std: float | None = None
        self._fitted = mode != "global"  # the other modes have nothing to fit

    def __repr__(self) -> str:
        if self.mode == "global":
            return f"Normaliser('global', mean={self.mean!r}, std={self.std!r})"
        return f"Normaliser({self.mode!r})"

    def fit(self, X_train) -> "Normaliser":
        """Fit on training rows ``(n_rows, n_samples)``; returns ``self``.

        ``"global"`` stores the mean and the std (floored at 1e-6) of every value of
        ``X_train``, computed in float64; the other modes fit nothing.
        """
        if self.mode == "global":
            X = np.asarray(X_train)
            if X.size == 0:
                raise ValueError("cannot fit a global normalisation on an empty array")
            self.mean = float(np.mean(X, dtype=np.float64))
            self.std = max(float(np.std(X, dtype=np.float64)), _STD_FLOOR)
        self._fitted = True
        return self

    def transform(self, X) -> np.ndarray:
        """Return the normalised copy of ``X`` ``(n_rows, n_samples)`` as float32."""
        if not self._fitted:
            raise RuntimeError("Normaliser('global') must be fitted (fit(X_train)) before transform")
        X = np.asarray(X)
        if self.mode == "none":
            return np.array(X, dtype=np.float32, copy=True)  # a copy: callers may edit it
        if self.mode == "global":
            out = (X.astype(np.float64) - self.mean) / self.std
            return out.astype(np.float32)
        # per_waveform: statistics along the time axis, in float64 for accuracy.
        X64 = X.astype(np.float64)
        mean = X64.mean(axis=-1, keepdims=True)
        std = np.maximum(X64.std(axis=-1, keepdims=True), _STD_FLOOR)
        return ((X64 - mean) / std).astype(np.float32)

    def fit_transform(self, X_train) -> np.ndarray:
        """``fit(X_train).transform(X_train)``."""
        return self.fit(X_train).transform(X_train)

    def state(self) -> dict:
        """JSON-serialisable state: ``{"mode", "mean", "std"}`` (mean/std None unless global)."""
        if not self._fitted:
            raise RuntimeError("Normaliser('global') has no state before fit")
        return {"mode": self.mode, "mean": self.mean, "std": self.std}

    @classmethod
    def from_state(cls, d: dict) -> "Normaliser":
        """Rebuild a fitted Normaliser from :meth:`state`."""
        norm = cls(d["mode"])
        if norm.mode == "global":
            if d.get("mean") is None or d.get("std") is None:
                raise ValueError("a global Normaliser state needs 'mean' and 'std'")
            norm.mean = float(d["mean"])
            norm.std = float(d["std"])
        norm._fitted = True
        return norm


def resample_to_length(X: np.ndarray, length: int, n_channels: int = 1) -> np.ndarray:
    """Linearly resample each row of ``X`` ``(n_rows, n_channels * n_in)`` onto ``length``
    points per channel.

    The new points span the same time window as the old ones: the first and last samples
    are kept and the others interpolated at ``i * (n_in - 1) / (length - 1)`` in old-sample
    units. Each channel of a multi-channel row (channel-major) is resampled on its own, never
    across a channel boundary. Identity (a float32 copy) when ``n_in == length``.

    Returns:
        A new float32 array ``(n_rows, n_channels * length)``.
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_rows, n_samples), got shape {X.shape}")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
        raise ValueError(f"length must be a positive integer, got {length!r}")
    if n_channels < 1 or X.shape[1] % n_channels:
        raise ValueError(f"{X.shape[1]} columns do not split into {n_channels} channels")
    if n_channels > 1:  # (rows, C*n_in) -> (rows*C, n_in): every channel is one row
        out = resample_to_length(X.reshape(-1, X.shape[1] // n_channels), length)
        return np.ascontiguousarray(out.reshape(X.shape[0], n_channels * length))
    n_in = X.shape[1]
    if n_in == length:
        return np.array(X, dtype=np.float32, copy=True)
    if n_in < 2 or length < 2:
        raise ValueError(f"cannot resample {n_in} samples to {length}: both lengths must be at least 2")
    pos = np.linspace(0.0, n_in - 1, length)
    lo = np.minimum(np.floor(pos).astype(np.int64), n_in - 2)
    frac = pos - lo  # in [0, 1]; exactly 1 at the last point, which keeps the last sample
    X64 = X.astype(np.float64)
    out = X64[:, lo] * (1.0 - frac) + X64[:, lo + 1] * frac
    return np.ascontiguousarray(out, dtype=np.float32)
