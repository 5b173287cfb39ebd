"""Time series in CSV files: reading them strictly, the standard splits, the z-score and the windows.

A file has a header line and one row per time step: a timestamp column (``date``: ``YYYY-MM-DD HH:MM:SS`` or any
ISO 8601 form) and numeric columns. Every problem is a :class:`DataError` naming the file, the line and the column:
a missing column, a short row, a cell that is not a number (or is NaN / infinite), a timestamp that does not parse,
repeats or goes back in time.

The splits follow Informer / Autoformer / DLinear / PatchTST (``Dataset_ETT_hour`` and ``Dataset_Custom``):
training rows ``[0, b1)``, validation ``[b1 - L, b2)``, test ``[b2 - L, b3)``, where ``L`` is the input length,
so that the first validation window predicts the first row after training. A window starting at ``s`` reads rows
``[s, s + L)`` and predicts rows ``[s + L, s + L + H)``; a split of ``n`` rows has ``n - L - H + 1`` windows.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from nlpseq.data.io import check_file, decode_line
from nlpseq.errors import DataError

SPLIT_NAMES = ("train", "dev", "test")


@dataclass
class Series:
    """A table read from ``path``: ``values`` ``(rows, len(columns))`` float64, one timestamp per row."""

    path: str
    timestamps: list[datetime]
    columns: list[str]
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.timestamps)

    def select(self, columns: list[str]) -> Series:
        """The same rows with only ``columns``, in that order; a :class:`DataError` naming the missing ones."""
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise DataError(self.path, None, f"has no column {', '.join(map(repr, missing))}")
        return Series(self.path, self.timestamps, list(columns),
                      self.values[:, [self.columns.index(c) for c in columns]])


def read_series(path: str | Path, columns: list[str] | None = None, date_column: str = "date") -> Series:
    """The ``columns`` (default: every column but ``date_column``) of the CSV file ``path``, checked strictly."""
    path = check_file(path)
    with open(path, "rb") as f:
        lines = [decode_line(raw, str(path), number) for number, raw in enumerate(f, start=1)]
    return parse_series(lines, str(path), columns, date_column)


def parse_series(lines: list[str], source: str, columns: list[str] | None = None, date_column: str = "date",
                 first_line: int = 1) -> Series:
    """:func:`read_series` on the text ``lines`` of ``source`` (the header first, at line ``first_line``)."""
    rows = list(csv.reader(lines))
    while rows and not any(cell.strip() for cell in rows[-1]):  # trailing blank lines
        rows.pop()
    if not rows:
        raise DataError(source, None, f"is empty; expected a header line with {date_column!r} and value columns")
    header = [name.strip() for name in rows[0]]
    header_line = first_line or None  # rows given from Python have no header line to name
    if date_column not in header:
        raise DataError(source, header_line, f"has no column {date_column!r} (the timestamps); the header has "
                        f"{', '.join(header)}")
    wanted = [c for c in header if c != date_column] if columns is None else list(columns)
    missing = [c for c in wanted if c not in header]
    if missing:
        raise DataError(source, header_line, f"has no column {', '.join(map(repr, missing))}; the header has "
                        f"{', '.join(header)}")
    if len(rows) < 2:
        raise DataError(source, None, "has a header but no rows")
    at = [header.index(c) for c in wanted]
    date_at = header.index(date_column)
    values = np.empty((len(rows) - 1, len(wanted)), dtype=np.float64)
    stamps: list[datetime] = []
    for i, row in enumerate(rows[1:]):
        line = first_line + 1 + i
        if len(row) != len(header):
            raise DataError(source, line, f"has {len(row)} cells; the header has {len(header)} columns")
        stamps.append(_timestamp(row[date_at], source, line, date_column, stamps[-1] if stamps else None))
        for j, k in enumerate(at):
            values[i, j] = _number(row[k], source, line, wanted[j])
    return Series(source, stamps, wanted, values)


def _timestamp(cell: str, source: str, line: int, column: str, previous: datetime | None) -> datetime:
    try:
        stamp = datetime.fromisoformat(cell.strip())
    except ValueError:
        raise DataError(source, line, f"column {column}: {cell!r} is not a timestamp (expected e.g. "
                        "2016-07-01 00:00:00)") from None
    if previous is not None and stamp <= previous:
        what = "repeats the previous row's" if stamp == previous else "is earlier than the previous row's"
        raise DataError(source, line, f"column {column}: {cell.strip()} {what} timestamp; rows must be in time "
                        "order, one per time step")
    return stamp


def _number(cell: str, source: str, line: int, column: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        shown = "an empty cell" if not cell.strip() else repr(cell)
        raise DataError(source, line, f"column {column}: {shown} is not a number") from None
    if not math.isfinite(value):
        raise DataError(source, line, f"column {column}: {cell.strip()} is not a finite number (missing values "
                        "must be filled in before forecasting)")
    return value


def time_step(timestamps: list[datetime]) -> timedelta:
    """The most common interval between consecutive timestamps (the series' frequency)."""
    if len(timestamps) < 2:
        raise ValueError("a time step needs at least two timestamps")
    return Counter(b - a for a, b in zip(timestamps, timestamps[1:])).most_common(1)[0][0]


def split_borders(rows: int, borders: list[int] | None, input_length: int) -> dict[str, tuple[int, int]]:
    """Row ranges ``[start, end)`` of each split, the input window before the first target included.

    ``borders`` are the ends of train, validation and test (ETTh: 8640, 11520, 14400); ``None`` takes
    Dataset_Custom's 70% / 10% / 20% of ``rows``.
    """
    if borders is None:
        train, test = int(rows * 0.7), int(rows * 0.2)
        borders = [train, rows - test, rows]
    b1, b2, b3 = (int(b) for b in borders)
    if not 0 < b1 < b2 < b3 <= rows:
        raise ValueError(f"split borders {b1}, {b2}, {b3} must increase and end within the {rows} rows")
    return {"train": (0, b1), "dev": (max(b1 - input_length, 0), b2), "test": (max(b2 - input_length, 0), b3)}


def window_count(rows: int, input_length: int, horizon: int) -> int:
    """Windows in ``rows`` consecutive rows: every start with a full input and a full horizon."""
    return max(rows - input_length - horizon + 1, 0)


def windows(values: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """``values`` ``(rows, columns)`` -> ``(len(starts), length, columns)``: rows ``[s, s + length)`` per start."""
    return values[starts[:, None] + np.arange(length)[None, :]]


@dataclass
class Scaler:
    """The z-score of each column, fitted on training rows only (population standard deviation, as sklearn)."""

    mean: np.ndarray  # (columns,)
    std: np.ndarray  # (columns,)

    @classmethod
    def fit(cls, values: np.ndarray) -> Scaler:
        std = values.std(axis=0)
        return cls(values.mean(axis=0), np.where(std > 0, std, 1.0))  # a constant column stays as it is

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.std

    def inverse(self, values: np.ndarray, columns: list[int] | None = None) -> np.ndarray:
        """Back to the data's units; ``columns`` picks the scaler's columns that ``values``' last axis holds."""
        at = slice(None) if columns is None else columns
        return values * self.std[at] + self.mean[at]

    def state(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_state(cls, state: dict) -> Scaler:
        return cls(np.asarray(state["mean"], dtype=np.float64), np.asarray(state["std"], dtype=np.float64))
