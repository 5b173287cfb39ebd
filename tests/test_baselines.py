"""The forecasting baselines: naive forecasts on tiny arrays, ARIMA on a short synthetic AR(1) series."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from nlpseq.baselines import (
    MAX_D,
    MAX_P,
    MAX_Q,
    arima_available,
    arima_forecasts,
    arima_weights,
    choose_d,
    fit_arima,
    repeat_last,
    seasonal_naive,
)
from nlpseq.errors import NlpseqError


def _history() -> np.ndarray:
    """(2 windows, 5 steps, 2 columns): window w, step t, column c holds 100 w + 10 t + c."""
    w, t, c = np.meshgrid(np.arange(2), np.arange(5), np.arange(2), indexing="ij")
    return (100 * w + 10 * t + c).astype(np.float64)


def test_repeat_last_repeats_each_windows_last_row():
    out = repeat_last(_history(), 3)
    assert out.shape == (2, 3, 2)
    np.testing.assert_array_equal(out[0], [[40, 41]] * 3)
    np.testing.assert_array_equal(out[1], [[140, 141]] * 3)


def test_seasonal_naive_repeats_the_last_season():
    out = seasonal_naive(_history(), 5, season=2)
    assert out.shape == (2, 5, 2)
    # season 2 of a 5-step window: steps 3, 4, 3, 4, 3
    np.testing.assert_array_equal(out[0, :, 0], [30, 40, 30, 40, 30])
    np.testing.assert_array_equal(out[1, :, 1], [131, 141, 131, 141, 131])
    np.testing.assert_array_equal(seasonal_naive(_history(), 2, season=1), repeat_last(_history(), 2))
    np.testing.assert_array_equal(seasonal_naive(_history(), 5, season=5), _history())


def test_seasonal_naive_refuses_a_window_shorter_than_the_season():
    with pytest.raises(NlpseqError, match="input length 5 is shorter than the season 24"):
        seasonal_naive(_history(), 3, season=24)


def test_naive_forecasts_check_their_inputs():
    with pytest.raises(NlpseqError, match="windows, length, columns"):
        repeat_last(np.zeros((4, 3)), 2)
    with pytest.raises(NlpseqError, match="horizon"):
        repeat_last(_history(), 0)


@pytest.fixture(scope="module")
def ar1() -> np.ndarray:
    """300 points of x_t = 0.7 x_{t-1} + e_t around a mean of 2."""
    rng = np.random.default_rng(0)
    x = np.zeros(300)
    for t in range(1, 300):
        x[t] = 0.7 * x[t - 1] + rng.normal()
    return x + 2.0


def test_arima_available_matches_the_import():
    try:
        import statsmodels  # noqa: F401
    except ImportError:
        assert not arima_available()
    else:
        assert arima_available()


def test_arima_fit_and_forecasts_match_statsmodels(ar1):
    pytest.importorskip("statsmodels")
    fit = fit_arima(ar1[:200], order=(1, 0, 0))
    assert fit.order == (1, 0, 0) and fit.converged
    assert len(fit.params) == 3 and abs(fit.params[1] - 0.7) < 0.15  # const, ar.L1, sigma2
    windows = np.stack([ar1[200 + s:220 + s] for s in range(30)])  # 30 windows of 20: more than L, weights path
    out = arima_forecasts(fit, windows, 7)
    assert out.shape == (30, 7)
    expected = np.stack([fit.results.apply(w).forecast(7) for w in windows])
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-9)
    few = arima_forecasts(fit, windows[:3], 7)  # fewer windows than L: one apply per window
    np.testing.assert_allclose(few, expected[:3], rtol=0, atol=1e-12)


def test_arima_weights_are_exact_with_differencing_and_ma(ar1):
    pytest.importorskip("statsmodels")
    fit = fit_arima(ar1[:200], order=(1, 1, 1))
    weights, offset = arima_weights(fit, 25, 10)
    assert weights.shape == (10, 25) and offset.shape == (10,)
    rng = np.random.default_rng(1)
    for window in (ar1[250:275], rng.normal(size=25) * 5):
        np.testing.assert_allclose(weights @ window + offset, fit.results.apply(window).forecast(10), atol=1e-9)


def test_arima_order_selection_stays_in_the_grid(ar1):
    pytest.importorskip("statsmodels")
    fit = fit_arima(ar1[:200], max_p=2, max_q=1)
    p, d, q = fit.order
    assert 0 <= p <= 2 and 0 <= d <= MAX_D and 0 <= q <= 1
    assert d == 0  # a stationary AR(1): KPSS does not ask for a difference
    assert len(fit.candidates) == 6 and fit.aic == min(fit.candidates.values())


def test_kpss_differences_a_random_walk_once():
    pytest.importorskip("statsmodels")
    walk = np.cumsum(np.random.default_rng(2).normal(size=300))
    assert choose_d(walk) == 1 and choose_d(np.diff(walk)) == 0
    assert (MAX_P, MAX_Q, MAX_D) == (3, 2, 1)  # the default grid the ETT numbers were measured with


def test_missing_statsmodels_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "statsmodels.tsa.arima.model", None)  # makes the import raise ImportError
    with pytest.raises(NlpseqError, match=re.escape("pip install 'nlpseq[arima]'")):
        fit_arima(np.arange(50.0), order=(1, 0, 0))


def test_arima_refuses_bad_input():
    pytest.importorskip("statsmodels")
    with pytest.raises(NlpseqError, match="univariate"):
        fit_arima(np.zeros((20, 2)))
    with pytest.raises(NlpseqError, match="NaN"):
        fit_arima(np.full(20, np.nan))
