"""``evaluate.py`` for a forecaster: MSE / MAE per variable and overall, next to the baselines a forecast has to
beat (repeat-last, seasonal-naive and ARIMA), the forecasts as CSV and a plot of a few windows."""

from __future__ import annotations

import csv
import time

import numpy as np

from nlpseq.baselines import arima_available, arima_forecasts, fit_arima, repeat_last, seasonal_naive
from nlpseq.data.series import windows
from nlpseq.errors import NlpseqError


def forecast_report(task, model, examples, output: str | None = None, arima: bool | None = None,
                    arima_order: list[int] | None = None, plot_windows: int | None = None) -> tuple[dict, str]:
    """Score every window of ``examples`` (a :class:`ForecastExamples`): the model's MSE / MAE overall and on the
    target (``mse``, ``mae``, ``<target>_mse``, ``<target>_mae``) and the report; with ``output``, write the forecasts
    (data units) to FILE and a plot of ``plot_windows`` (default 4) windows of the target to ``FILE.png``.

    ``arima``: fit ARIMA on the target's training rows and apply it to every window (default: when statsmodels is
    installed and the examples come from the corpus); ``arima_order`` ``[p, d, q]`` skips the AIC search.
    """
    length, horizon, outputs = task.input_length, task.horizon, task.outputs
    starts = np.arange(len(examples))
    inputs = windows(examples.rows, starts, length)
    targets = windows(examples.rows, starts + length, horizon)[:, :, outputs]
    forecasts = task.forecast(model, inputs)
    season = int(task.cfg.data.season)
    methods = {"model": task.point(forecasts), "repeat-last": repeat_last(inputs, horizon)[:, :, outputs]}
    if length >= season:
        methods[f"seasonal-naive({season})"] = seasonal_naive(inputs, horizon, season)[:, :, outputs]
    notes = [f"{examples.name}: every one of {len(examples)} windows, input {length}, horizon {horizon}, features "
             f"{task.cfg.task.features}; MSE / MAE of z-scored values (training rows' mean and deviation)"]
    target = str(task.cfg.data.target)
    arima_column = None
    if _wants_arima(arima, examples, notes):
        column = task.columns.index(target)
        start = time.perf_counter()
        fit = fit_arima(examples.train_rows[:, column], tuple(arima_order) if arima_order else None)
        fitted = time.perf_counter() - start
        forecast = arima_forecasts(fit, inputs[:, :, column], horizon)
        arima_column = f"ARIMA{tuple(fit.order)}"
        methods[arima_column] = forecast[:, :, None]
        how = "given" if arima_order else "chosen by AIC"
        notes.append(f"{arima_column} on {target} only: order {how}, fitted on the {len(examples.train_rows)} "
                     f"training rows in {fitted:.1f} s, applied to each window without refitting in "
                     f"{time.perf_counter() - start - fitted:.1f} s")
    text = "\n".join(notes) + "\n\n" + _table(methods, task.output_columns, targets, arima_column,
                                              task.output_columns.index(target) if target in task.output_columns
                                              else None)
    if len(task.quantiles) >= 2:
        text += "\n" + _coverage(task.quantiles, forecasts, targets)
    if output:
        write_forecasts(task, examples, forecasts, output)
        png = plot(task, examples, forecasts, output, plot_windows)
        text += f"\nforecasts (data units) written to {output}; plot in {png}"
    return _model_scores(methods["model"], targets, task.output_columns, target), text


def _model_scores(forecast: np.ndarray, targets: np.ndarray, columns: list[str], target: str) -> dict[str, float]:
    """MSE / MAE over all variables and, when it is forecast, on the target alone; forecasts ``(windows, horizon,
    variables)``."""
    scores = dict(zip(("mse", "mae"), mse_mae(forecast, targets)))
    if target in columns and len(columns) > 1:
        at = columns.index(target)
        scores.update(zip((f"{target}_mse", f"{target}_mae"), mse_mae(forecast[:, :, at], targets[:, :, at])))
    return scores


def _wants_arima(arima: bool | None, examples, notes: list[str]) -> bool:
    if arima is False:
        return False
    if examples.train_rows is None:
        if arima:
            raise NlpseqError("arima=true needs the corpus's training rows: score a split (split=test), not file=")
        return False
    if not arima_available():
        if arima:
            raise NlpseqError("the ARIMA baseline needs statsmodels: pip install 'nlpseq[arima]'")
        notes.append("ARIMA left out: statsmodels is not installed (pip install 'nlpseq[arima]')")
        return False
    return True


def _table(methods: dict[str, np.ndarray], columns: list[str], targets: np.ndarray, arima: str | None,
           target_at: int | None) -> str:
    """Rows: each variable and overall; columns: each method's ``MSE / MAE`` (ARIMA on the target only)."""
    width = max(len(n) for n in methods) + 2
    head = f"{'variable':<10}" + "".join(f"{name:>{max(width, 17)}}" for name in methods)
    lines = [head]
    for j, column in enumerate([*columns, "overall"]):
        cells = []
        for name, forecast in methods.items():
            if name == arima:
                ok = j == target_at or (column == "overall" and len(columns) == 1)
                cells.append(_scores(forecast[:, :, 0], targets[:, :, target_at]) if ok else "-")
            else:
                picked = slice(None) if column == "overall" else j
                cells.append(_scores(forecast[:, :, picked], targets[:, :, picked]))
        lines.append(f"{column:<10}" + "".join(f"{c:>{max(width, 17)}}" for c in cells))
    return "\n".join(lines)


def _coverage(quantiles: tuple[float, ...], forecasts: np.ndarray, targets: np.ndarray) -> str:
    """How often the truth falls between the lowest and the highest quantile forecast, against the nominal rate,
    and the mean pinball loss of each quantile."""
    low, high = forecasts.min(-1), forecasts.max(-1)
    inside = float(((targets >= low) & (targets <= high)).mean())
    error = targets[..., None] - forecasts
    q = np.asarray(quantiles)
    pinball = np.maximum(q * error, (q - 1) * error).mean(axis=(0, 1, 2))
    losses = ", ".join(f"q{level * 100:g} {value:.4f}" for level, value in zip(quantiles, pinball))
    return (f"interval [q{min(quantiles) * 100:g}, q{max(quantiles) * 100:g}] holds {100 * inside:.1f}% of the true "
            f"values (nominal {100 * (max(quantiles) - min(quantiles)):.0f}%); pinball loss {losses}")


def mse_mae(forecast: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Mean squared and mean absolute error over every entry (in float64)."""
    error = forecast.astype(np.float64) - truth
    return float((error ** 2).mean()), float(np.abs(error).mean())


def _scores(forecast: np.ndarray, truth: np.ndarray) -> str:
    return "{:.3f} / {:.3f}".format(*mse_mae(forecast, truth))


def write_forecasts(task, examples, forecasts: np.ndarray, output: str) -> None:
    """One CSV row per window and step: ``window,date`` then each variable's forecast (and quantiles) and truth,
    in the data's units."""
    length, horizon, outputs = task.input_length, task.horizon, task.outputs
    starts = np.arange(len(examples))
    truth = task.scaler.inverse(windows(examples.rows, starts + length, horizon)[:, :, outputs], outputs)
    point = task.scaler.inverse(task.point(forecasts), outputs)
    levels = [task.scaler.inverse(forecasts[..., k], outputs) for k in range(len(task.quantiles))]
    header = ["window", "date"]
    for column in task.output_columns:
        header += [column, *(f"{column}_q{q * 100:g}" for q in task.quantiles), f"{column}_truth"]
    with open(output, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for w in starts:
            for h in range(horizon):
                row = [int(w), str(examples.timestamps[w + length + h])]
                for j in range(len(outputs)):
                    row += [f"{point[w, h, j]:.6g}", *(f"{lv[w, h, j]:.6g}" for lv in levels), f"{truth[w, h, j]:.6g}"]
                writer.writerow(row)


def plot(task, examples, forecasts: np.ndarray, output: str, count: int | None = None) -> str:
    """Draw ``count`` windows spread over the examples (the target, data units; the input's last ``2 * horizon``
    steps) to ``output.png``."""
    from nlpseq.plots import plot_forecasts

    target = str(task.cfg.data.target)
    j = task.output_columns.index(target) if target in task.output_columns else 0
    column = task.outputs[j]
    picked = np.unique(np.linspace(0, len(examples) - 1, max(int(count or 4), 1)).round().astype(int))
    length, horizon = task.input_length, task.horizon
    scale = task.scaler.std[column], task.scaler.mean[column]
    shown = min(length, 2 * horizon)  # a long input would squeeze the forecast into a corner
    history = [examples.rows[w + length - shown:w + length, column] * scale[0] + scale[1] for w in picked]
    truth = [examples.rows[w + length:w + length + horizon, column] * scale[0] + scale[1] for w in picked]
    point = task.point(forecasts)[picked, :, j] * scale[0] + scale[1]
    band = None
    if len(task.quantiles) >= 2:
        levels = forecasts[picked, :, j]  # (windows, horizon, quantiles): the outermost two bound the band
        band = np.stack([levels.min(-1), levels.max(-1)], -1) * scale[0] + scale[1]
    titles = [f"window {w}: forecast from {examples.timestamps[w + length]}" for w in picked]
    return str(plot_forecasts(history, truth, point, band, titles, f"{output}.png",
                              f"{task.output_columns[j]}, {examples.name}"))
