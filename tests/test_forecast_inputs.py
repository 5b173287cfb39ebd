"""Forecasting, bad input: every bad history, series or row list is one clear error naming the file (or
``<rows>``), the line and the column; through ``scripts/predict.py`` it is one ``error: FILE:LINE: ...`` line on
standard error, exit status 1, no traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nlpseq
from nlpseq.data.series import read_series
from nlpseq.errors import ConfigError, DataError, NlpseqError
from nlpseq.tasks.forecast import ForecastTask
from nlpseq.trainer import train
from tests.test_forecast import LENGTH, series_lines, tiny_config, write_series
from tests.test_reliability_inputs import one_error, run_inline, run_process

HISTORY = 30  # rows of a history file: lines 2..31 (the header is line 1)
BAD_LINE = 10  # the line each bad history spoils: row 8 of the file


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> tuple[Path, object]:
    """A tiny forecaster of columns load, OT trained once for the module: ``(best.pt, predictor)``."""
    root = tmp_path_factory.mktemp("forecast_inputs")
    cfg = tiny_config(write_series(root / "series.csv"))
    result = train(ForecastTask.from_config(cfg), cfg, root / "run")
    return Path(result["best_checkpoint"]), nlpseq.load(result["best_checkpoint"])


def history_lines() -> list[str]:
    lines = series_lines(rows=300)
    return [lines[0], *lines[-HISTORY:]]


def set_cell(lines: list[str], line: int, column: int, value: str) -> list[str]:
    """``lines`` with the cell ``column`` (0: the date) of file line ``line`` (1-based) replaced."""
    cells = lines[line - 1].split(",")
    cells[column] = value
    return [*lines[:line - 1], ",".join(cells), *lines[line:]]


def date_of(lines: list[str], line: int) -> str:
    return lines[line - 1].split(",")[0]


def spoil(name: str, lines: list[str]) -> tuple[list[str], str]:
    """``lines`` (a header and rows) spoiled as ``name`` says, and the one error expected after ``FILE:``."""
    if name == "missing column":
        return [",".join(c for i, c in enumerate(line.split(",")) if i != 1) for line in lines], \
            "1: has no column 'load'; the header has date, OT"
    if name == "short row":
        return [*lines[:BAD_LINE - 1], lines[BAD_LINE - 1].rsplit(",", 1)[0], *lines[BAD_LINE:]], \
            f"{BAD_LINE}: has 2 cells; the header has 3 columns"
    column, value, message = {
        "non-numeric cell": (2, "12.5x", "column OT: '12.5x' is not a number"),
        "word in a cell": (1, "high", "column load: 'high' is not a number"),
        "empty cell": (2, "", "column OT: an empty cell is not a number"),
        "NaN cell": (2, "NaN", "column OT: NaN is not a finite number (missing values must be filled in"),
        "infinite cell": (1, "-inf", "column load: -inf is not a finite number"),
        "unsorted timestamps": (0, date_of(lines, BAD_LINE - 3),
                                f"column date: {date_of(lines, BAD_LINE - 3)} is earlier than the previous row's "
                                "timestamp; rows must be in time order"),
        "duplicate timestamps": (0, date_of(lines, BAD_LINE - 1),
                                 f"column date: {date_of(lines, BAD_LINE - 1)} repeats the previous row's timestamp"),
        "unparseable timestamp": (0, "2020-13-45 00:00:00", "column date: '2020-13-45 00:00:00' is not a timestamp "
                                  "(expected e.g. 2016-07-01 00:00:00)"),
    }[name]
    return set_cell(lines, BAD_LINE, column, value), f"{BAD_LINE}: {message}"


BAD_FILES = ["missing column", "non-numeric cell", "word in a cell", "empty cell", "NaN cell", "infinite cell",
             "unsorted timestamps", "duplicate timestamps", "unparseable timestamp", "short row"]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def spoiled(tmp_path: Path, name: str, lines: list[str] | None = None) -> tuple[Path, str]:
    """A file of ``lines`` (default: a history) spoiled as ``name`` says, and the message expected (path first)."""
    lines, message = spoil(name, history_lines() if lines is None else lines)
    path = write(tmp_path / "history.csv", lines)
    return path, f"{path}:{message}"


# every bad history file, through the Python API -----------------------------------------------------------------
@pytest.mark.parametrize("name", BAD_FILES)
def test_a_bad_history_file_is_one_error_naming_file_line_and_column(model, tmp_path, name):
    _, forecaster = model
    path, expected = spoiled(tmp_path, name)
    with pytest.raises(DataError) as caught:
        forecaster.predict(forecaster.read_inputs(str(path)))
    assert str(caught.value).startswith(expected), str(caught.value)
    assert "\n" not in str(caught.value)


def test_too_few_rows_for_the_input_length(model, tmp_path):
    _, forecaster = model
    path = write(tmp_path / "history.csv", history_lines()[:LENGTH])  # the header and LENGTH - 1 rows
    with pytest.raises(DataError, match=rf"^{path}: has {LENGTH - 1} rows; the model reads the last {LENGTH} "
                                        r"\(task.input_length\)$"):
        forecaster.predict(forecaster.read_inputs(str(path)))
    forecaster.predict(forecaster.read_inputs(str(write(path, history_lines()[:LENGTH + 1]))))  # exactly L: fine


def test_a_gap_in_the_history_names_the_row_after_it(model, tmp_path):
    _, forecaster = model
    lines = history_lines()
    gap = [*lines[:BAD_LINE - 1], *lines[BAD_LINE:]]  # the row of line BAD_LINE left out
    path = write(tmp_path / "history.csv", gap)
    after = date_of(lines, BAD_LINE + 1)  # now on line BAD_LINE
    with pytest.raises(DataError, match=rf"^{path}:{BAD_LINE}: column date: {after} is 2:00:00 after the previous "
                                        r"row; the model was trained on steps of 1:00:00$"):
        forecaster.predict(forecaster.read_inputs(str(path)))
    early = [lines[0], *lines[1:3], *lines[4:]]  # a gap before the last L rows: they are all the model reads
    assert len(forecaster.predict(forecaster.read_inputs(str(write(path, early))))) == 12


# through scripts/predict.py -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["missing column", "NaN cell", "short row", "unparseable timestamp"])
def test_predict_script_reports_a_bad_history_in_one_line(model, tmp_path, name):
    best, _ = model
    path, expected = spoiled(tmp_path, name)
    done = run_inline("predict.py", f"checkpoint={best}", f"input={path}")
    assert done.stdout == ""
    one_error(done, f"error: {expected}")


def test_predict_script_in_a_real_process_reports_a_bad_cell(model, tmp_path):
    best, _ = model
    path, expected = spoiled(tmp_path, "non-numeric cell")
    done = run_process("predict.py", f"checkpoint={best}", f"input={path}")
    one_error(done, f"error: {expected}")
    done = run_process("predict.py", f"checkpoint={best}", "input=-",
                       stdin=("\n".join(spoil("short row", history_lines())[0]) + "\n").encode())
    one_error(done, f"error: <stdin>:{BAD_LINE}: has 2 cells; the header has 3 columns")


def test_predict_script_reports_a_gap_and_too_few_rows(model, tmp_path):
    best, _ = model
    lines = history_lines()
    path = write(tmp_path / "gap.csv", [*lines[:BAD_LINE - 1], *lines[BAD_LINE:]])
    one_error(run_inline("predict.py", f"checkpoint={best}", f"input={path}"),
              f"error: {path}:{BAD_LINE}: column date: {date_of(lines, BAD_LINE + 1)} is 2:00:00 after")
    path = write(tmp_path / "short.csv", lines[:5])
    one_error(run_inline("predict.py", f"checkpoint={best}", f"input={path}"),
              f"error: {path}: has 4 rows; the model reads the last {LENGTH}")


def test_interactive_is_refused_for_a_forecaster(model):
    best, _ = model
    done = run_inline("predict.py", f"checkpoint={best}", "interactive=true", stdin=b"2020-01-01,1,2\n")
    one_error(done, "error: interactive=true predicts line by line; a forecast model reads one whole input: give "
                    "input=FILE")


def test_evaluate_script_reports_a_file_too_short_for_one_window(model, tmp_path):
    best, _ = model
    path = write(tmp_path / "short.csv", history_lines()[:LENGTH + 6])  # L + 5 rows: a window needs L + 12
    one_error(run_inline("evaluate.py", f"checkpoint={best}", f"file={path}", "arima=false"),
              f"error: {path}: has {LENGTH + 5} rows: too few for one window of {LENGTH} input and 12 forecast steps")
    path, expected = spoiled(tmp_path, "duplicate timestamps")
    one_error(run_inline("evaluate.py", f"checkpoint={best}", f"file={path}", "arima=false"), f"error: {expected}")


# the training series --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["non-numeric cell", "duplicate timestamps", "short row"])
def test_a_bad_training_series_is_one_error(tmp_path, name):
    path, expected = spoiled(tmp_path, name, series_lines(rows=300))
    with pytest.raises(DataError) as caught:
        ForecastTask.from_config(tiny_config(path))
    assert str(caught.value).startswith(expected), str(caught.value)
    with pytest.raises(DataError, match=rf"^{path}:{BAD_LINE}: "):
        read_series(path)


def test_a_training_series_too_short_for_the_windows(tmp_path):
    path = write_series(tmp_path / "series.csv", rows=60)  # 6 validation rows + 24: no 36-row window
    with pytest.raises(ConfigError, match=rf"^{path}: 60 rows leave \d+ training and 0 validation windows for "
                                          rf"task.input_length={LENGTH} and task.horizon=12$"):
        ForecastTask.from_config(tiny_config(path))
    with pytest.raises(ConfigError, match="data.target=Temp is not a column of the data \\(it has load, OT\\)"):
        ForecastTask.from_config(tiny_config(path, "data.target=Temp"))


# rows given from Python ---------------------------------------------------------------------------------------
def history_rows() -> list[dict]:
    frame = pd.DataFrame([line.split(",") for line in history_lines()[1:]], columns=["date", "load", "OT"])
    return [{"date": r["date"], "load": float(r["load"]), "OT": float(r["OT"])} for r in frame.to_dict("records")]


def test_rows_from_python_name_the_row_and_column(model):
    _, forecaster = model
    rows = history_rows()
    assert len(forecaster.predict(rows)) == 12

    missing = [dict(r) for r in rows]
    del missing[7]["OT"]  # rows are numbered from 1: this is row 8
    with pytest.raises(DataError, match=r"^<rows>:8: column OT: an empty cell is not a number$"):
        forecaster.predict(missing)
    with pytest.raises(DataError, match=r"^<rows>: has no column 'OT'; the header has date, load$"):
        forecaster.predict([{k: v for k, v in r.items() if k != "OT"} for r in rows])

    for value, shown in (("abc", "'abc' is not a number"), (None, "'None' is not a number"),
                         (float("nan"), "nan is not a finite number"), ([1.0], r"'\[1.0\]' is not a number")):
        bad = [dict(r) for r in rows]
        bad[4]["load"] = value
        with pytest.raises(DataError, match=rf"^<rows>:5: column load: {shown}"):
            forecaster.predict(bad)

    gap = rows[:9] + rows[10:]
    with pytest.raises(DataError, match=rf"^<rows>:10: column date: {rows[10]['date']} is 2:00:00 after the "
                                        "previous row"):
        forecaster.predict(gap)
    with pytest.raises(DataError, match=rf"^<rows>:10: column date: {rows[10]['date']} is 2:00:00 after"):
        forecaster.predict(pd.DataFrame(gap))  # the same through a DataFrame
    unsorted = [dict(r) for r in rows]
    unsorted[3]["date"] = rows[1]["date"]
    with pytest.raises(DataError, match=rf"^<rows>:4: column date: {rows[1]['date']} is earlier than the previous"):
        forecaster.predict(unsorted)
    with pytest.raises(DataError, match=r"^<rows>:3: column date: 'yesterday' is not a timestamp"):
        forecaster.predict([*rows[:2], {**rows[2], "date": "yesterday"}, *rows[3:]])
    with pytest.raises(DataError, match=rf"^<rows>: has 5 rows; the model reads the last {LENGTH}"):
        forecaster.predict(rows[:5])


def test_what_is_not_a_table_is_refused(model):
    _, forecaster = model
    for history in ([("2020-01-01", 1.0, 2.0)], 42, {"date": "2020-01-01", "load": 1.0, "OT": 2.0}):
        with pytest.raises(NlpseqError, match="history must be a pandas DataFrame, a list of row dicts or a Series"):
            forecaster.predict(history)
    with pytest.raises(NlpseqError, match="has no column 'date'"):
        forecaster.predict(pd.DataFrame(history_rows()).drop(columns="date"))


def test_rows_holding_numpy_floats_forecast_as_python_floats(model):
    _, forecaster = model
    rows = history_rows()
    expected = forecaster.predict(rows)
    as_numpy = [{"date": r["date"], "load": np.float64(r["load"]), "OT": np.float64(r["OT"])} for r in rows]
    assert forecaster.predict(as_numpy) == expected
