"""A trained forecaster: ``nlpseq.load(path).predict(history)`` and what ``predict.py`` / ``evaluate.py`` drive.

``history`` is a table with the training columns (more are ignored): a pandas ``DataFrame`` (the timestamps a
column or the index), a list of row dicts, the path of a CSV file, or a :class:`Series` read from one. Its last
``task.input_length`` rows, spaced by the training data's time step, are the model's input; the result is one
dict per forecast step: ``{"date": "...", "<column>": value, ...}`` in the data's units, with the quantile
forecasts beside (``"OT_q10"``, ``"OT_q90"``) when the model has them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from nlpseq.cli import stdin_bytes
from nlpseq.data.io import STDIN, decode_lines
from nlpseq.data.series import Series, parse_series, read_series, split_borders
from nlpseq.errors import DataError, NlpseqError
from nlpseq.inference import PredictorBase
from nlpseq.tasks.forecast import ForecastTask, read_data

ROWS = "<rows>"  # the name rows given from Python get in messages


@dataclass
class ForecastExamples:
    """Rows to score every window of: ``rows`` ``(n, channels)`` normalised, and, for ARIMA, the normalised
    training rows of the corpus (None for a file)."""

    name: str
    rows: np.ndarray
    timestamps: list[datetime]
    train_rows: np.ndarray | None
    windows: int

    def __len__(self) -> int:
        return self.windows


class Forecaster(PredictorBase):
    """Inference from a checkpoint: ``nlpseq.load(path).predict(dataframe_or_rows)``."""

    offers = ("predict(history)",)
    evaluation_options = ("arima", "arima_order", "plot_windows")
    reads_lines = False  # predict.py reads one CSV history, not one input per line

    def __init__(self, task: ForecastTask, model):
        self.task, self.model = task, model.eval()

    @property
    def text_header(self) -> str:
        """The CSV header ``predict.py format=text`` prints before the rows."""
        return ",".join(["date", *self._names()]) + "\n"

    def _names(self) -> list[str]:
        names = []
        for column in self.task.output_columns:
            names.append(column)
            names.extend(f"{column}_q{q * 100:g}" for q in self.task.quantiles)
        return names

    # ----- prediction ---------------------------------------------------------------------------
    def read_inputs(self, path: str) -> Series:
        """``predict.py input=FILE`` (``-``: standard input): the history CSV, checked strictly."""
        date = str(self.task.cfg.data.date_column)
        if path == "-":
            return parse_series([text for _, text in decode_lines(stdin_bytes(), STDIN)], STDIN,
                                self.task.columns, date)
        return read_series(path, self.task.columns, date)

    def predict(self, history, **options) -> list[dict]:
        """The next ``task.horizon`` steps after ``history`` (see the module's docstring)."""
        self.check_options(options, self.prediction_options)
        series = self._as_series(history)
        task, length = self.task, self.task.input_length
        if len(series) < length:
            raise DataError(series.path, None, f"has {len(series)} rows; the model reads the last {length} "
                            "(task.input_length)")
        stamps = series.timestamps[-length:]
        for i, (a, b) in enumerate(zip(stamps, stamps[1:])):
            if b - a != task.step:
                raise DataError(series.path, _line(series, len(series) - length + i + 1),
                                f"column {task.cfg.data.date_column}: {b} is {b - a} after the previous row; the "
                                f"model was trained on steps of {task.step}")
        inputs = task.scaler.transform(series.values[-length:])[None]
        forecasts = task.forecast(self.model, inputs)[0]  # (horizon, outputs, quantiles)
        point = task.scaler.inverse(task.point(forecasts[None])[0], task.outputs)
        levels = [task.scaler.inverse(forecasts[..., k], task.outputs) for k in range(len(task.quantiles))]
        results = []
        for h in range(task.horizon):
            row = {"date": str(stamps[-1] + (h + 1) * task.step)}
            for j, column in enumerate(task.output_columns):
                row[column] = round(float(point[h, j]), 6)
                for k, q in enumerate(task.quantiles):
                    row[f"{column}_q{q * 100:g}"] = round(float(levels[k][h, j]), 6)
            results.append(row)
        return results

    def format_text(self, result: dict) -> str:
        """One forecast step as a CSV row (after :attr:`text_header`)."""
        return ",".join([result["date"], *(repr(result[n]) for n in self._names())]) + "\n"

    def _as_series(self, history) -> Series:
        if isinstance(history, (str, Path)):
            return read_series(history, self.task.columns, str(self.task.cfg.data.date_column))
        if isinstance(history, Series):
            return history.select(self.task.columns)
        if isinstance(history, list) and len(history) == 1 and isinstance(history[0], Series):
            return self._as_series(history[0])  # predict.py passes what read_inputs gave
        return parse_series(_csv_lines(history, str(self.task.cfg.data.date_column)), ROWS, self.task.columns,
                            str(self.task.cfg.data.date_column), first_line=0)

    # ----- evaluation ---------------------------------------------------------------------------
    def read_examples(self, split: str | None, file: str | None, data_root: str | None, **options
                      ) -> ForecastExamples:
        task, data = self.task, self.task.cfg.data
        if file:
            series = read_series(file, task.columns, str(data.date_column))
            name, start, end, train = file, 0, len(series), None
        else:
            if split not in ("train", "dev", "test"):
                raise NlpseqError(f"split must be one of train, dev, test, got {split!r}")
            series = read_data(data, data_root).select(task.columns)
            borders = split_borders(len(series), data.get("borders"), task.input_length)
            (start, end), train = borders[split], task.scaler.transform(series.values[slice(*borders["train"])])
            name = f"{data.name} {split}"
        rows = task.scaler.transform(series.values[start:end])
        count = len(rows) - task.input_length - task.horizon + 1
        if count < 1:
            raise DataError(name, None, f"has {len(rows)} rows: too few for one window of {task.input_length} "
                            f"input and {task.horizon} forecast steps")
        return ForecastExamples(name, rows, series.timestamps[start:end], train, count)

    def score(self, examples: ForecastExamples, output: str | None, **options) -> tuple[dict[str, float], str]:
        from nlpseq.tasks.forecast_report import forecast_report

        return forecast_report(self.task, self.model, examples, output, **options)


def _line(series: Series, row: int) -> int | None:
    """The file line of 0-based ``row``: after the header in a file, the row's own number for Python rows."""
    return row + (1 if series.path == ROWS else 2)


def _csv_lines(history, date_column: str) -> list[str]:
    """A DataFrame or a list of row dicts as CSV text lines (header first), so one parser checks every input."""
    if hasattr(history, "to_dict") and hasattr(history, "columns"):  # a pandas DataFrame, without importing pandas
        if date_column not in history.columns and getattr(history.index, "name", None) == date_column:
            history = history.reset_index()
        history = history.to_dict("records")
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        raise NlpseqError("history must be a pandas DataFrame, a list of row dicts or a Series read from a CSV "
                          f"file, got {type(history).__name__}")
    header = list(dict.fromkeys(key for row in history for key in row))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in history:
        writer.writerow([_cell(row.get(key, "")) for key in header])
    return buffer.getvalue().splitlines()


def _cell(value) -> str:
    if isinstance(value, float):  # np.float64 too, whose repr is 'np.float64(...)'
        return repr(float(value))
    return str(value)

