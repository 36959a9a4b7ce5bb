"""tuning.data.preprocess: normalisation fitted on train only, per-waveform scaling, resampling."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tuning.data.preprocess import NORMALISATIONS, Normaliser, resample_to_length


def waveforms(n=200, length=48, seed=0):
    rng = np.random.default_rng(seed)
    scale = rng.uniform(20, 120, size=(n, 1))  # amplitudes differ per spike, in uV
    t = np.linspace(0, 1, length)
    return (-scale * np.exp(-((t - 0.3) ** 2) / 0.005) + rng.normal(3.0, 5.0, (n, length))).astype(np.float32)


def read_only(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


def test_modes():
    assert NORMALISATIONS == ("none", "per_waveform", "global")
    with pytest.raises(ValueError, match="unknown normalisation"):
        Normaliser("minmax")


def test_global_fitted_on_train_only():
    X = waveforms()
    train, rest = np.arange(150), np.arange(150, 200)
    a = Normaliser("global").fit(X[train])
    X2 = X.copy()
    X2[rest] = X2[rest] * 50 + 1000  # changing non-training rows does not change the fit
    b = Normaliser("global").fit(X2[train])
    assert a.state() == b.state()
    assert np.array_equal(a.transform(X[rest]), b.transform(X[rest]))
    z = a.transform(X[train])
    assert abs(float(z.mean())) < 1e-5 and abs(float(z.std()) - 1) < 1e-5
    assert a.mean == pytest.approx(float(X[train].astype(np.float64).mean()))
    assert a.std == pytest.approx(float(X[train].astype(np.float64).std()))


def test_global_transform_matches_formula_and_keeps_relative_amplitude():
    X = waveforms()
    norm = Normaliser("global").fit(X[:100])
    out = norm.transform(X[100:])
    assert out.dtype == np.float32 and out.shape == (100, 48)
    np.testing.assert_allclose(out, (X[100:].astype(np.float64) - norm.mean) / norm.std, rtol=1e-5, atol=1e-5)


def test_global_needs_fit():
    with pytest.raises(RuntimeError):
        Normaliser("global").transform(waveforms(5))


def test_per_waveform_rows_mean0_std1():
    X = waveforms()
    out = Normaliser("per_waveform").fit(X[:10]).transform(X)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=1), 1, atol=1e-5)


def test_per_waveform_flat_row_is_zero_not_nan():
    X = np.vstack([np.full(48, 7.5, np.float32), waveforms(1)[0]])
    out = Normaliser("per_waveform").transform(X)
    assert np.isfinite(out).all() and (out[0] == 0).all()


def test_none_is_float32_copy():
    X = waveforms(10).astype(np.float64)
    out = Normaliser("none").fit(X).transform(X)
    assert out.dtype == np.float32 and np.allclose(out, X)
    X32 = waveforms(10)
    out32 = Normaliser("none").transform(X32)
    assert not np.shares_memory(out32, X32)


@pytest.mark.parametrize("mode", NORMALISATIONS)
def test_read_only_inputs_untouched(mode):
    X = read_only(waveforms(50))
    before = X.copy()
    norm = Normaliser(mode).fit(X[:30])
    out = norm.transform(X)
    assert np.array_equal(X, before)
    assert not np.shares_memory(out, X)
    out[0, 0] = 123.0  # the output is the caller's to edit


@pytest.mark.parametrize("mode", NORMALISATIONS)
def test_state_round_trip_json(mode):
    X = waveforms()
    norm = Normaliser(mode).fit(X[:120])
    state = json.loads(json.dumps(norm.state()))
    again = Normaliser.from_state(state)
    assert again.mode == mode
    assert np.array_equal(again.transform(X[120:]), norm.transform(X[120:]))


def test_from_state_rejects_incomplete_global():
    with pytest.raises(ValueError):
        Normaliser.from_state({"mode": "global", "mean": None, "std": None})
    with pytest.raises(ValueError):
        Normaliser.from_state({"mode": "robust"})


# ---------------------------------------------------------------- resample_to_length


def test_resample_identity():
    X = read_only(waveforms(20).astype(np.float64))
    out = resample_to_length(X, 48)
    assert out.dtype == np.float32 and out.shape == X.shape
    assert np.array_equal(out, X.astype(np.float32)) and not np.shares_memory(out, X)


@pytest.mark.parametrize("length", [32, 60, 96])
def test_resample_endpoints_and_shape(length):
    X = read_only(waveforms(20))
    before = X.copy()
    out = resample_to_length(X, length)
    assert out.shape == (20, length) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out[:, 0], X[:, 0], rtol=1e-6)
    np.testing.assert_allclose(out[:, -1], X[:, -1], rtol=1e-6)
    assert np.array_equal(X, before)


def test_resample_is_linear_interpolation():
    # A straight line stays a straight line over the same window.
    t_in = np.linspace(0.0, 1.5, 40)
    X = np.vstack([2.0 * t_in - 1.0, -t_in])
    out = resample_to_length(X, 64)
    t_out = np.linspace(0.0, 1.5, 64)
    np.testing.assert_allclose(out, np.vstack([2.0 * t_out - 1.0, -t_out]), atol=1e-6)
    # Doubling then sampling back at the original points gives the original samples.
    Y = waveforms(5, length=25)
    up = resample_to_length(Y, 49)  # 49 = 2 * (25 - 1) + 1: every other point is original
    np.testing.assert_allclose(up[:, ::2], Y, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(up[:, 1::2], (Y[:, :-1] + Y[:, 1:]) / 2, rtol=1e-6, atol=1e-4)


def test_resample_rejects_bad_arguments():
    with pytest.raises(ValueError):
        resample_to_length(np.zeros(10), 5)
    with pytest.raises(ValueError):
        resample_to_length(np.zeros((2, 10)), 1)
    with pytest.raises(ValueError):
        resample_to_length(np.zeros((2, 10)), 0)
