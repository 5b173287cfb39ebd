"""Forecasting: a CSV time series (ETTh1 / ETTh2 / any) -> segment-wise recurrent forecaster -> MSE, MAE.

``task.features``: ``M`` forecasts every variable from every variable, ``S`` the target from its own past, ``MS``
the target from every variable. Values are z-scored with the training rows' mean and deviation; the model, the
loss and the reported MSE / MAE all work on those normalised values (as the published ETT results do).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
from omegaconf import DictConfig

from nlpseq.data.datasets import MANIFEST, corpus_dir, resolve_path
from nlpseq.data.series import Scaler, Series, read_series, split_borders, time_step, window_count, windows
from nlpseq.errors import ConfigError, check_choice
from nlpseq.inference import evaluating
from nlpseq.models.forecaster import SegmentForecaster, build_forecaster
from nlpseq.tasks.common import Objective

log = logging.getLogger(__name__)

FEATURES = ("M", "S", "MS")


@dataclass
class ForecastBatch:
    inputs: torch.Tensor  # (batch, input_length, input channels), normalised
    targets: torch.Tensor  # (batch, horizon, output channels), normalised

    @property
    def num_tokens(self) -> int:
        """Time steps read: the trainer's tokens/s is windows x input length per second."""
        return self.inputs.shape[0] * self.inputs.shape[1]


def forecast_loss(model: SegmentForecaster, batch: ForecastBatch, kind: str, quantiles: tuple[float, ...]
                  ) -> torch.Tensor:
    """Mean ``kind`` (``mae`` / ``mse``) error of the point forecast, or with ``quantiles`` the mean pinball loss
    of every quantile forecast."""
    forecast = model(batch.inputs)  # (batch, horizon, outputs, quantiles)
    error = batch.targets.unsqueeze(-1) - forecast
    if quantiles:
        q = torch.tensor(quantiles, dtype=error.dtype, device=error.device)
        return torch.maximum(q * error, (q - 1) * error).mean()
    return error.abs().mean() if kind == "mae" else error.pow(2).mean()


class ForecastTask:
    """Owns the columns, the scaler, the time step and (when training) the normalised rows of each split."""

    name = "forecast"
    higher_is_better = False

    def __init__(self, cfg: DictConfig, columns: list[str], outputs: list[str], scaler: Scaler, step: timedelta):
        tc = cfg.task
        check_choice("task.features", tc.features, FEATURES)
        check_choice("task.metric", tc.metric, ("mse", "mae"))
        self.cfg, self.columns, self.output_columns, self.scaler, self.step = cfg, columns, outputs, scaler, step
        self.metric = str(tc.metric)
        self.input_length, self.horizon = int(tc.input_length), int(tc.horizon)
        self.outputs = [columns.index(c) for c in outputs]  # input channels that are forecast
        self.quantiles = tuple(float(q) for q in cfg.model.get("quantiles") or ())
        self.splits: dict[str, np.ndarray] = {}  # split -> normalised rows (rows, channels), input window included

    # ----- construction -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: DictConfig) -> ForecastTask:
        series = read_data(cfg.data)
        columns, outputs = feature_columns(cfg, series.columns)
        values = series.select(columns).values
        borders = split_borders(len(series), cfg.data.get("borders"), int(cfg.task.input_length))
        train_start, train_end = borders["train"]
        task = cls(cfg, columns, outputs, Scaler.fit(values[train_start:train_end]), time_step(series.timestamps))
        normalised = task.scaler.transform(values)
        task.splits = {name: normalised[a:b].astype(np.float32) for name, (a, b) in borders.items()}
        counts = {name: task.window_count(name) for name in borders}
        if not counts["train"] or not counts["dev"]:
            raise ConfigError(f"{series.path}: {len(series)} rows leave {counts['train']} training and "
                              f"{counts['dev']} validation windows for task.input_length={task.input_length} and "
                              f"task.horizon={task.horizon}")
        log.info("%s: %d rows, step %s; splits %s; windows %s; %s -> %s", series.path, len(series), task.step,
                 borders, counts, ",".join(columns), ",".join(outputs))
        return task

    @classmethod
    def from_state(cls, cfg: DictConfig, state: dict) -> ForecastTask:
        return cls(cfg, list(state["columns"]), list(state["outputs"]), Scaler.from_state(state["scaler"]),
                   timedelta(seconds=float(state["step_seconds"])))

    def state(self) -> dict:
        return {"columns": list(self.columns), "outputs": list(self.output_columns), "scaler": self.scaler.state(),
                "step_seconds": self.step.total_seconds()}

    def build_model(self) -> SegmentForecaster:
        return build_forecaster(self.cfg.model, self.input_length, self.horizon, len(self.columns), self.outputs)

    def predictor(self, model: SegmentForecaster):
        from nlpseq.tasks.forecast_predictor import Forecaster

        return Forecaster(self, model)

    # ----- windows and batches ------------------------------------------------------------------
    def window_count(self, split: str) -> int:
        return window_count(len(self.splits[split]), self.input_length, self.horizon)

    def window_arrays(self, split: str, starts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Inputs ``(windows, input_length, channels)`` and targets ``(windows, horizon, outputs)`` of ``split``
        (every window, or those starting at ``starts``)."""
        rows = self.splits[split]
        starts = np.arange(self.window_count(split)) if starts is None else np.asarray(starts)
        targets = windows(rows, starts + self.input_length, self.horizon)[:, :, self.outputs]
        return windows(rows, starts, self.input_length), targets

    def train_lengths(self) -> list[int]:
        return [self.input_length] * self.window_count("train")

    def collate(self, indices: list[int], epoch: int) -> ForecastBatch:
        inputs, targets = self.window_arrays("train", np.asarray(indices))
        return ForecastBatch(torch.from_numpy(inputs), torch.from_numpy(targets))

    def objective(self, model: SegmentForecaster) -> Objective:
        return Objective(model, functools.partial(forecast_loss, kind=str(self.cfg.task.loss),
                                                  quantiles=self.quantiles))

    # ----- evaluation ---------------------------------------------------------------------------
    def forecast(self, model: SegmentForecaster, inputs: np.ndarray) -> np.ndarray:
        """Normalised inputs ``(windows, input_length, channels)`` -> forecasts ``(windows, horizon, outputs,
        quantiles)``, in batches of ``trainer.eval_batch_size`` windows."""
        size = int(self.cfg.trainer.eval_batch_size)
        parts = []
        with evaluating(model) as device:
            for start in range(0, len(inputs), size):
                batch = torch.from_numpy(np.ascontiguousarray(inputs[start:start + size], dtype=np.float32))
                parts.append(model(batch.to(device)).float().cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, self.horizon, len(self.outputs), 1), np.float32)

    def point(self, forecasts: np.ndarray) -> np.ndarray:
        """The point forecast ``(windows, horizon, outputs)``: the median quantile (or the only forecast)."""
        if not self.quantiles:
            return forecasts[..., 0]
        return forecasts[..., int(np.argmin([abs(q - 0.5) for q in self.quantiles]))]

    def validation_stats(self, model: SegmentForecaster, rank: int = 0, world_size: int = 1) -> dict[str, float]:
        """Sums of squared and absolute errors over this rank's validation windows, and how many values."""
        starts = np.arange(self.window_count("dev"))[rank::world_size]
        inputs, targets = self.window_arrays("dev", starts)
        error = self.point(self.forecast(model, inputs)).astype(np.float64) - targets
        return {"squared_error": float((error ** 2).sum()), "absolute_error": float(np.abs(error).sum()),
                "values": float(error.size)}

    def scores(self, stats: dict[str, float]) -> dict[str, float]:
        n = max(stats["values"], 1.0)
        return {"mse": stats["squared_error"] / n, "mae": stats["absolute_error"] / n}


def read_data(data: DictConfig, root: str | None = None) -> Series:
    """The configured series: a known corpus (``data=etth1``) from its folder under the data root, or any CSV
    (``data=csv data.path=FILE``)."""
    root = root or data.root
    if data.name in MANIFEST:
        path = corpus_dir(data.name, root, data.download, [str(data.path)]) / str(data.path)
    else:
        path = resolve_path(str(data.path), root)
    return read_series(path, list(data.columns) if data.get("columns") else None, str(data.date_column))


def feature_columns(cfg: DictConfig, available: list[str]) -> tuple[list[str], list[str]]:
    """``(input columns, forecast columns)`` for ``task.features``: M all / all, S target / target, MS all / target."""
    target = str(cfg.data.target)
    if target not in available:
        raise ConfigError(f"data.target={target} is not a column of the data (it has {', '.join(available)})")
    features = cfg.task.features
    if features == "S":
        return [target], [target]
    return list(available), (list(available) if features == "M" else [target])
