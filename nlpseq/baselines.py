"""Forecasting baselines without training: repeat the last value, repeat the last season, and ARIMA.

Every function takes numpy arrays of input windows and returns numpy forecasts (float64). ARIMA is fitted once on
the training rows of one univariate series and then applied, with its parameters fixed, to every input window.
statsmodels is an optional extra (``pip install 'nlpseq[arima]'``) imported only when ARIMA is used.
"""

from __future__ import annotations

import importlib.util
import itertools
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nlpseq.errors import NlpseqError

# Order search: d from the KPSS test (as auto.arima), then every (p, q) in these ranges by AIC. AIC values of
# different d are not comparable (the differenced likelihood drops d observations), hence d is not searched.
MAX_P, MAX_Q, MAX_D = 3, 2, 1
KPSS_ALPHA = 0.05
# statsmodels stops L-BFGS at 50 iterations; on ETTh2 ARIMA(2,1,2) and (3,1,2) need 56 and 66 to converge (~1 s).
MAX_ITER = 300

_MISSING = "the ARIMA baseline needs statsmodels: pip install 'nlpseq[arima]'"


def repeat_last(history: np.ndarray, horizon: int) -> np.ndarray:
    """``history`` ``(windows, L, C)`` -> ``(windows, horizon, C)``: each window's last row, repeated."""
    history = _history(history, horizon)
    return np.repeat(history[:, -1:], horizon, axis=1)


def seasonal_naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """``history`` ``(windows, L, C)`` -> ``(windows, horizon, C)``: step ``t`` repeats row ``L - season + t % season``.

    Raises :class:`NlpseqError` when the window is shorter than one season.
    """
    history = _history(history, horizon)
    length = history.shape[1]
    if season < 1:
        raise NlpseqError(f"seasonal_naive: season must be at least 1, got {season}")
    if length < season:
        raise NlpseqError(f"seasonal_naive: the input length {length} is shorter than the season {season}; "
                          f"use an input of at least {season} steps")
    return history[:, length - season + np.arange(horizon) % season]


def _history(history: np.ndarray, horizon: int) -> np.ndarray:
    history = np.asarray(history, dtype=np.float64)
    if history.ndim != 3 or history.shape[1] == 0:
        raise NlpseqError(f"expected input windows of shape (windows, length, columns), got {history.shape}")
    if horizon < 1:
        raise NlpseqError(f"the horizon must be at least 1, got {horizon}")
    return history


@dataclass
class ArimaFit:
    """An ARIMA(p, d, q) fitted on one series. ``results`` is statsmodels' object: used in memory, never saved."""

    order: tuple[int, int, int]
    params: list[float]  # statsmodels' order: const (d = 0 only), ar.L*, ma.L*, sigma2
    aic: float
    converged: bool
    results: Any = field(repr=False, compare=False)
    candidates: dict[tuple[int, int, int], float] = field(default_factory=dict, repr=False)  # order -> AIC searched


def arima_available() -> bool:
    """Whether statsmodels (the ``nlpseq[arima]`` extra) can be imported."""
    return importlib.util.find_spec("statsmodels") is not None


def _statsmodels():
    try:
        from statsmodels.tsa.arima.model import ARIMA
        from statsmodels.tsa.stattools import kpss
    except ImportError as e:
        raise NlpseqError(_MISSING) from e
    return ARIMA, kpss


@contextmanager
def _quiet():
    """Hide statsmodels' advice (no convergence, start values reset, p-value off the table); errors still raise.

    Whether the optimiser converged is kept in :attr:`ArimaFit.converged` instead.
    """
    from statsmodels.tools import sm_exceptions as sm

    with warnings.catch_warnings():
        for category in (sm.ConvergenceWarning, sm.ValueWarning, sm.InterpolationWarning, FutureWarning):
            warnings.simplefilter("ignore", category)
        for start in ("Non-stationary starting", "Non-invertible starting", "Too few observations"):
            warnings.filterwarnings("ignore", message=start, category=UserWarning)
        yield


def fit_arima(series: np.ndarray, order: tuple[int, int, int] | None = None, *, max_p: int = MAX_P,
              max_q: int = MAX_Q, max_d: int = MAX_D) -> ArimaFit:
    """ARIMA fitted by maximum likelihood on ``series`` ``(T,)`` (the training rows of one column).

    ``order=None`` picks d with :func:`choose_d` (KPSS), then the (p, q) in ``[0, max_p] x [0, max_q]`` with the
    lowest AIC among the fits whose optimiser converged. With d = 0 the model has a mean; with d >= 1 no drift.
    """
    series = _series(series)
    ARIMA, _ = _statsmodels()
    if order is not None:
        return _fit(ARIMA, series, tuple(int(k) for k in order))
    d = choose_d(series, max_d)
    fits = []
    for p, q in itertools.product(range(max_p + 1), range(max_q + 1)):
        try:
            fits.append(_fit(ARIMA, series, (p, d, q)))
        except (np.linalg.LinAlgError, ValueError):  # one order that cannot be estimated must not stop the search
            continue
    if not fits:
        raise NlpseqError(f"no ARIMA(p, {d}, q) with p <= {max_p}, q <= {max_q} could be fitted to the series")
    pool = [f for f in fits if f.converged] or fits
    best = min(pool, key=lambda f: f.aic)
    best.candidates = {f.order: f.aic for f in fits}
    return best


def choose_d(series: np.ndarray, max_d: int = MAX_D) -> int:
    """The fewest differences (up to ``max_d``) after which KPSS does not reject level stationarity at 5%."""
    _, kpss = _statsmodels()
    x = _series(series)
    for d in range(max_d):
        with _quiet():
            result = kpss(x, regression="c", nlags="auto")
        pvalue = result.pvalue if hasattr(result, "pvalue") else result[1]
        if pvalue >= KPSS_ALPHA:
            return d
        x = np.diff(x)
    return max_d


def _fit(ARIMA, series: np.ndarray, order: tuple[int, int, int]) -> ArimaFit:
    if len(order) != 3 or min(order) < 0:
        raise NlpseqError(f"an ARIMA order is three counts (p, d, q) >= 0, got {order}")
    trend = "c" if order[1] == 0 else "n"  # a constant with d >= 1 would be a drift, which ETT has no reason for
    with _quiet():
        results = ARIMA(series, order=order, trend=trend).fit(method_kwargs={"maxiter": MAX_ITER})
    converged = bool((getattr(results, "mle_retvals", None) or {}).get("converged", True))
    return ArimaFit(order, [float(v) for v in results.params], float(results.aic), converged, results)


def _series(series: np.ndarray) -> np.ndarray:
    series = np.asarray(series, dtype=np.float64)
    if series.ndim != 1:
        raise NlpseqError(f"ARIMA takes one univariate series of shape (T,), got {series.shape}")
    if not np.isfinite(series).all():
        raise NlpseqError("the series for ARIMA has NaN or infinite values")
    if len(series) < 10:
        raise NlpseqError(f"the series for ARIMA has {len(series)} values; it needs at least 10")
    return series


def arima_forecasts(fit: ArimaFit, windows: np.ndarray, horizon: int) -> np.ndarray:
    """``windows`` ``(windows, L)`` -> ``(windows, horizon)``: ``fit`` applied to each window, parameters fixed.

    Equal to statsmodels' ``fit.results.apply(window).forecast(horizon)`` per window. With more windows than ``L``
    it goes through :func:`arima_weights` (``L + 1`` filter runs in all instead of one per window).
    """
    windows = np.asarray(windows, dtype=np.float64)
    if windows.ndim != 2 or windows.shape[1] == 0:
        raise NlpseqError(f"expected ARIMA input windows of shape (windows, length), got {windows.shape}")
    if horizon < 1:
        raise NlpseqError(f"the horizon must be at least 1, got {horizon}")
    if not np.isfinite(windows).all():
        raise NlpseqError("the ARIMA input windows have NaN or infinite values")
    count, length = windows.shape
    if count <= length:
        return np.stack([_apply(fit, w, horizon) for w in windows]) if count else np.empty((0, horizon))
    weights, offset = arima_weights(fit, length, horizon)
    return windows @ weights.T + offset


def arima_weights(fit: ArimaFit, length: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """The forecast as an affine map of the window: ``(W (horizon, length), b (horizon,))``, forecast = W @ x + b.

    With parameters fixed and no missing values, the Kalman gains and the (diffuse) initialisation do not depend
    on the data, so the filtered state, hence every forecast, is affine in the window: b is the forecast of zeros
    and column i of W the forecast of the i-th unit vector minus b. Exact up to rounding (about 1e-14).
    """
    offset = _apply(fit, np.zeros(length), horizon)
    weights = np.empty((horizon, length))
    for i, unit in enumerate(np.eye(length)):
        weights[:, i] = _apply(fit, unit, horizon) - offset
    return weights, offset


def _apply(fit: ArimaFit, window: np.ndarray, horizon: int) -> np.ndarray:
    with _quiet():
        return np.asarray(fit.results.apply(window).forecast(horizon), dtype=np.float64)
