"""Forecasting end to end: the published ETT baselines and splits, training-only normalisation, batched forecasts,
train -> save -> load -> predict through the scripts, features M / S / MS, and the window / segment check."""

from __future__ import annotations

import csv
import json
import math
import os
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import nlpseq
from nlpseq.baselines import repeat_last
from nlpseq.data.series import read_series, split_borders, window_count
from nlpseq.errors import ConfigError
from nlpseq.schema import validate
from nlpseq.tasks.forecast import ForecastTask
from nlpseq.tasks.forecast_predictor import Forecaster
from nlpseq.trainer import train
from tests.conftest import SHARED_DATA, compose_config
from tests.test_reliability_inputs import run_inline, run_process

ETT_ROOT = Path(os.environ.get("NLPSEQ_DATA") or SHARED_DATA)
requires_ett = pytest.mark.skipif(not (ETT_ROOT / "ett" / "ETTh1.csv").exists() or
                                  not (ETT_ROOT / "ett" / "ETTh2.csv").exists(),
                                  reason="ETTh1.csv / ETTh2.csv are not in $NLPSEQ_DATA/ett (or ../shared/data/ett)")
ETT_BORDERS = (8640, 11520, 14400)
ETT_ROWS = 17420

START, STEP = datetime(2020, 1, 1), timedelta(hours=1)
LENGTH, HORIZON = 24, 12  # the tiny model's input length and horizon
TINY_FORECASTER = ["task=forecast", "data=csv", "data.target=OT", f"task.input_length={LENGTH}",
                   f"task.horizon={HORIZON}", "model.segment_length=12", "model.hidden_size=8", "trainer=debug",
                   "trainer.max_steps=4", "trainer.batch_size=16", "trainer.num_threads=1",
                   "trainer.progress_bar=false"]


def series_lines(rows: int = 300, columns: tuple[str, ...] = ("load", "OT"), seed: int = 0,
                 start: datetime = START, step: timedelta = STEP) -> list[str]:
    """A header and ``rows`` rows ``step`` apart (hourly): a 24-step cycle plus noise per column (OT also drifts
    upwards)."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    lines = [",".join(["date", *columns])]
    values = [np.sin(2 * np.pi * (t + 3 * k) / 24) * (k + 1) + 0.1 * rng.standard_normal(rows) + 0.01 * t * (c == "OT")
              for k, c in enumerate(columns)]
    for i in range(rows):
        lines.append(",".join([f"{start + i * step:%Y-%m-%d %H:%M:%S}", *(f"{v[i]:.4f}" for v in values)]))
    return lines


def write_series(path: Path, rows: int = 300, columns: tuple[str, ...] = ("load", "OT"), seed: int = 0) -> Path:
    path.write_text("\n".join(series_lines(rows, columns, seed)) + "\n", encoding="utf-8")
    return path


def tiny_config(path: Path, *overrides: str):
    return compose_config([*TINY_FORECASTER, f"data.path={path}", *overrides])


def ett_config(name: str, input_length: int, horizon: int = 96, *overrides: str):
    return compose_config(["task=forecast", f"data={name}", f"data.root={ETT_ROOT}", "data.download=false",
                           f"task.input_length={input_length}", f"task.horizon={horizon}", "model.segment_length=24",
                           "model.hidden_size=8", "trainer.eval_batch_size=1024", *overrides])


_ETT_TASKS: dict = {}


def ett_task(name: str, input_length: int) -> ForecastTask:
    """The task on a real ETT file (features M, horizon 96), read once per module run."""
    if (name, input_length) not in _ETT_TASKS:
        _ETT_TASKS[name, input_length] = ForecastTask.from_config(ett_config(name, input_length))
    return _ETT_TASKS[name, input_length]


def mse_mae(forecast: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    error = forecast.astype(np.float64) - truth
    return float((error ** 2).mean()), float(np.abs(error).mean())


# 1 -----------------------------------------------------------------------------------------------------------
@requires_ett
@pytest.mark.parametrize(("name", "mse", "mae"), [("etth1", 1.294, 0.713),  # measured 1.2944 / 0.7132
                                                  ("etth2", 0.432, 0.422)])  # measured 0.4317 / 0.4216 (= DLinear's)
def test_repeat_last_on_every_ett_test_window_matches_the_published_scores(name, mse, mae):
    task = ett_task(name, 96)
    inputs, targets = task.window_arrays("test")
    assert inputs.shape == (2785, 96, 7) and targets.shape == (2785, 96, 7)
    got = mse_mae(repeat_last(inputs, 96), targets)
    assert round(got[0], 3) == mse and round(got[1], 3) == mae, got


@requires_ett
def test_evaluate_report_on_etth1_shows_the_repeat_last_scores():
    task = ett_task("etth1", 96)
    predictor = Forecaster(task, task.build_model())
    examples = predictor.read_examples("test", None, str(ETT_ROOT))
    assert len(examples) == 2785 and examples.rows.shape == (2880 + 96, 7)
    report = predictor.report(examples, None, arima=False)
    lines = report.splitlines()
    head = next(line for line in lines if line.startswith("variable"))
    overall = next(line for line in lines if line.startswith("overall"))
    tokens, names = overall.split()[1:], head.split()[1:]
    cells = [" ".join(tokens[i:i + 3]) for i in range(0, len(tokens), 3)]  # "mse / mae" per method
    assert names == ["model", "repeat-last", "seasonal-naive(24)"]
    assert cells[1] == "1.294 / 0.713", report


# 2 -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("length", [96, 336])
def test_split_borders_and_window_counts_of_etth(length):
    borders = split_borders(ETT_ROWS, list(ETT_BORDERS), length)
    assert borders == {"train": (0, 8640), "dev": (8640 - length, 11520), "test": (11520 - length, 14400)}
    for horizon in (96, 192, 336, 720):
        assert window_count(8640, length, horizon) == 8640 - length - horizon + 1
        for split in ("dev", "test"):
            a, b = borders[split]
            assert window_count(b - a, length, horizon) == 2880 - horizon + 1
    assert window_count(10, 8, 4) == 0  # too short: no window, not a negative count
    default = split_borders(1000, None, length)  # Dataset_Custom: 70% / 10% / 20%
    assert default == {"train": (0, 700), "dev": (700 - length, 800), "test": (800 - length, 1000)}
    with pytest.raises(ValueError, match="must increase"):
        split_borders(ETT_ROWS, [8640, 8640, 14400], length)


@requires_ett
@pytest.mark.parametrize("length", [96, 336])
def test_the_task_counts_the_published_windows_on_etth1(length):
    task = ett_task("etth1", length)
    assert {k: len(v) for k, v in task.splits.items()} == {"train": 8640, "dev": 2880 + length,
                                                          "test": 2880 + length}
    assert task.window_count("train") == 8640 - length - 96 + 1
    assert task.window_count("dev") == task.window_count("test") == 2880 - 96 + 1
    assert len(task.train_lengths()) == task.window_count("train")
    # the first test window predicts the first row after validation (row 11520 of the file)
    raw = read_series(ETT_ROOT / "ett" / "ETTh1.csv")
    first_target = task.window_arrays("test", np.array([0]))[1][0, 0]
    assert np.allclose(first_target, task.scaler.transform(raw.values[11520]), atol=1e-5)


# 3 -----------------------------------------------------------------------------------------------------------
def test_normalisation_uses_the_training_rows_only(tmp_path):
    path = write_series(tmp_path / "series.csv", rows=300, columns=("load", "temp", "OT"))
    task = ForecastTask.from_config(tiny_config(path))
    b1 = split_borders(300, None, LENGTH)["train"][1]
    assert b1 == 210
    raw = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(1, 2, 3))
    assert np.allclose(task.scaler.mean, raw[:b1].mean(axis=0), rtol=0, atol=1e-12)
    assert np.allclose(task.scaler.std, raw[:b1].std(axis=0, ddof=0), rtol=0, atol=1e-12)

    lines = path.read_text().splitlines()
    changed = [line if i <= b1 else line.split(",")[0] + ",".join(["", "1000", "-1000", "12345.5"])
               for i, line in enumerate(lines)]  # line i is row i - 1: rows b1.. change
    path.write_text("\n".join(changed) + "\n")
    other = ForecastTask.from_config(tiny_config(path))
    assert np.array_equal(other.scaler.mean, task.scaler.mean) and np.array_equal(other.scaler.std, task.scaler.std)
    assert np.array_equal(other.splits["train"], task.splits["train"])
    assert not np.array_equal(other.splits["test"], task.splits["test"])

    # a changed training row does move it
    changed[5] = changed[5].split(",")[0] + ",99,99,99"
    path.write_text("\n".join(changed) + "\n")
    assert not np.array_equal(ForecastTask.from_config(tiny_config(path)).scaler.mean, task.scaler.mean)


# 4 -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("independent", [True, False])
def test_a_batched_forecast_equals_each_window_alone(tmp_path, cell, independent):
    path = write_series(tmp_path / "series.csv", rows=300, columns=("load", "temp", "OT"))
    cfg = tiny_config(path, f"model.cell={cell}", f"model.channel_independent={str(independent).lower()}",
                      "model.dropout=0.5", "model.layers=2", "trainer.eval_batch_size=7")
    task = ForecastTask.from_config(cfg)
    torch.manual_seed(0)
    model = task.build_model()
    model.train()  # task.forecast must switch dropout off itself
    inputs, _ = task.window_arrays("test")
    batched = task.forecast(model, inputs)
    assert batched.shape == (len(inputs), HORIZON, 3, 1)
    model.eval()
    with torch.no_grad():
        for i in range(len(inputs)):
            alone = model(torch.from_numpy(inputs[i:i + 1])).numpy()[0]
            assert np.allclose(batched[i], alone, atol=1e-5), i


# 5 -----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny forecaster trained by ``scripts/train.py`` on a made-up series: ``(series csv, best.pt)``."""
    root = tmp_path_factory.mktemp("forecast")
    path = write_series(root / "series.csv")
    run = root / "run"
    done = run_process("train.py", *TINY_FORECASTER, f"data.path={path}", f"hydra.run.dir={run}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith(f"best checkpoint: {run}/checkpoints/best.pt (dev mse ")
    assert (run / "checkpoints/last.pt").exists() and (run / "metrics.jsonl").exists()
    return path, run / "checkpoints" / "best.pt"


def check_forecast(result: list[dict], last: datetime, columns: list[str]) -> None:
    assert len(result) == HORIZON
    for h, row in enumerate(result):
        assert list(row) == ["date", *columns]
        assert row["date"] == str(last + (h + 1) * STEP)
        assert all(isinstance(row[c], float) and math.isfinite(row[c]) for c in columns)


def test_train_save_load_predict_round_trip(trained, tmp_path):
    path, best = trained
    raw = torch.load(best, weights_only=True)  # plain data only
    assert raw["task"] == "forecast" and raw["config"]["model"]["hidden_size"] == 8
    assert raw["task_state"]["columns"] == ["load", "OT"] and raw["task_state"]["step_seconds"] == 3600.0

    forecaster = nlpseq.load(best)
    frame = pd.read_csv(path, parse_dates=["date"]).tail(40)
    rows = [{"date": str(r["date"]), "load": r["load"], "OT": r["OT"]} for r in frame.to_dict("records")]
    expected = forecaster.predict(rows)
    last = datetime(2020, 1, 1) + 299 * STEP
    check_forecast(expected, last, ["load", "OT"])
    assert forecaster.predict(frame) == expected  # the date a column (datetime64)
    assert forecaster.predict(frame.set_index("date")) == expected  # the date the index
    assert forecaster.predict(frame.astype({"date": str})) == expected  # the date as text
    assert forecaster.predict(frame.assign(extra="ignored")) == expected  # columns it was not trained on
    history = tmp_path / "history.csv"
    frame.to_csv(history, index=False)
    assert forecaster.predict(forecaster.read_inputs(str(history))) == expected  # a Series read from a CSV file

    # the forecast of a test window equals what evaluate.py wrote for it
    output = tmp_path / "forecasts.csv"
    # on the CPU, as nlpseq.load above: a GPU's kernels (cuDNN's TF32) differ from the CPU's in the 5th digit
    done = run_inline("evaluate.py", f"checkpoint={best}", "split=test", f"output={output}", "arima=false",
                      "device=cpu")
    assert done.returncode == 0, done.stderr
    written = list(csv.DictReader(output.open()))
    window = 20
    first = next(r for r in written if r["window"] == str(window))
    all_rows = pd.read_csv(path)
    start = split_borders(300, None, LENGTH)["test"][0] + window
    got = forecaster.predict(all_rows.iloc[start:start + LENGTH])
    assert got[0]["date"] == first["date"] == all_rows["date"][start + LENGTH]
    for column in ("load", "OT"):
        assert got[0][column] == pytest.approx(float(first[column]), rel=1e-5, abs=1e-5)
    # and its scores file holds the overall and target scores that the printed table shows
    scores = json.loads((Path(best).parents[1] / "scores" / "test.json").read_text())["scores"]
    assert set(scores) == {"mse", "mae", "OT_mse", "OT_mae"}
    overall = next(line for line in done.stdout.splitlines() if line.startswith("overall"))
    assert overall.split()[1:4] == [f"{scores['mse']:.3f}", "/", f"{scores['mae']:.3f}"]


def test_predict_uses_only_the_last_input_length_rows(trained):
    path, best = trained
    forecaster = nlpseq.load(best)
    frame = pd.read_csv(path)
    expected = forecaster.predict(frame.tail(LENGTH))
    assert forecaster.predict(frame) == expected
    noisy = frame.copy()
    noisy.loc[:len(frame) - LENGTH - 1, ["load", "OT"]] = 1e6  # every row before the last L
    assert forecaster.predict(noisy) == expected
    changed = frame.copy()
    changed.loc[len(frame) - 1, "OT"] += 50.0  # the last row does count
    assert forecaster.predict(changed) != expected


def test_predict_script_prints_csv_and_jsonl(trained, tmp_path):
    path, best = trained
    history = tmp_path / "history.csv"
    history.write_text("\n".join(series_lines()[:1] + series_lines()[-30:]) + "\n", encoding="utf-8")
    expected = nlpseq.load(best).predict(pd.read_csv(history))

    # a real process, on the CPU as nlpseq.load (a GPU's kernels differ in the 5th digit)
    done = run_process("predict.py", f"checkpoint={best}", f"input={history}", "device=cpu")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "date,load,OT" and len(lines) == 1 + HORIZON
    parsed = [{"date": d, "load": float(a), "OT": float(b)} for d, a, b in (line.split(",") for line in lines[1:])]
    assert parsed == expected

    done = run_inline("predict.py", f"checkpoint={best}", "input=-", "format=jsonl", "device=cpu",
                      stdin=history.read_bytes())
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == expected

    output = tmp_path / "out.csv"
    done = run_inline("predict.py", f"checkpoint={best}", f"input={history}", f"output={output}")
    assert done.returncode == 0 and done.stdout == "", done.stderr
    assert output.read_text().splitlines() == lines


def test_evaluate_script_reports_variables_and_baselines(trained, tmp_path):
    path, best = trained
    output = tmp_path / "forecasts.csv"
    done = run_inline("evaluate.py", f"checkpoint={best}", "split=test", f"output={output}", "arima=false")
    assert done.returncode == 0, done.stderr
    windows = 60 - HORIZON + 1  # the last 20% of 300 rows (the input window before them aside)
    assert f"csv test: {windows} examples" in done.stdout
    table = {line.split()[0]: line for line in done.stdout.splitlines()
             if line.split() and line.split()[0] in ("variable", "load", "OT", "overall")}
    assert set(table) == {"variable", "load", "OT", "overall"}
    assert table["variable"].split()[1:] == ["model", "repeat-last", "seasonal-naive(24)"]
    for name in ("load", "OT", "overall"):
        cells = table[name].split()[1:]
        assert len(cells) == 9 and cells[1::3] == ["/"] * 3, table[name]  # "mse / mae" per method
    # repeat-last's overall score is the library's, on the same windows
    task = ForecastTask.from_config(tiny_config(path))
    inputs, targets = task.window_arrays("test")
    mse, mae = mse_mae(repeat_last(inputs, HORIZON), targets)
    assert table["overall"].split()[4:7] == [f"{mse:.3f}", "/", f"{mae:.3f}"]
    assert f"predictions written to {output}" in done.stdout

    rows = list(csv.reader(output.open()))
    assert rows[0] == ["window", "date", "load", "load_truth", "OT", "OT_truth"]
    assert len(rows) == 1 + windows * HORIZON
    png = Path(f"{output}.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quantile_forecasts(tmp_path):
    path = write_series(tmp_path / "series.csv")
    cfg = tiny_config(path, "model.quantiles=[0.1,0.5,0.9]")
    result = train(ForecastTask.from_config(cfg), cfg, tmp_path / "run")
    forecaster = nlpseq.load(result["best_checkpoint"])
    assert forecaster.text_header == "date,load,load_q10,load_q50,load_q90,OT,OT_q10,OT_q50,OT_q90\n"
    got = forecaster.predict(pd.read_csv(path).tail(LENGTH))
    assert len(got) == HORIZON
    for row in got:
        assert list(row) == ["date", "load", "load_q10", "load_q50", "load_q90", "OT", "OT_q10", "OT_q50", "OT_q90"]
        assert row["OT"] == row["OT_q50"] and row["load"] == row["load_q50"]  # the point forecast is the median
    assert forecaster.format_text(got[0]).count(",") == 8
    below = [row[f"{c}_q10"] <= row[f"{c}_q90"] for row in got for c in ("load", "OT")]
    assert len(below) == 2 * HORIZON  # an untrained model's quantiles may still cross: only their presence counts


def test_timestamps_continue_by_the_training_step(tmp_path):
    step = timedelta(minutes=15)
    path = tmp_path / "quarter_hours.csv"
    path.write_text("\n".join(series_lines(200, step=step)) + "\n", encoding="utf-8")
    task = ForecastTask.from_config(tiny_config(path))
    assert task.step == step and task.state()["step_seconds"] == 900.0
    got = Forecaster(task, task.build_model()).predict(pd.read_csv(path))
    last = START + 199 * step
    assert [row["date"] for row in got] == [str(last + (h + 1) * step) for h in range(HORIZON)]


# 6 -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("features", "inputs", "outputs"), [("M", ["load", "temp", "OT"], ["load", "temp", "OT"]),
                                                             ("S", ["OT"], ["OT"]),
                                                             ("MS", ["load", "temp", "OT"], ["OT"])])
def test_features_pick_the_input_and_output_columns(tmp_path, features, inputs, outputs):
    path = write_series(tmp_path / "series.csv", columns=("load", "temp", "OT"))
    task = ForecastTask.from_config(tiny_config(path, f"task.features={features}"))
    assert task.columns == inputs and task.output_columns == outputs
    windows, targets = task.window_arrays("test")
    assert windows.shape[1:] == (LENGTH, len(inputs)) and targets.shape[1:] == (HORIZON, len(outputs))
    model = task.build_model()
    assert task.forecast(model, windows[:3]).shape == (3, HORIZON, len(outputs), 1)
    got = Forecaster(task, model).predict(pd.read_csv(path))
    assert len(got) == HORIZON and all(list(row) == ["date", *outputs] for row in got)


# 7 -----------------------------------------------------------------------------------------------------------
def test_input_length_must_be_a_multiple_of_the_segment_length(tmp_path):
    path = write_series(tmp_path / "series.csv")
    validate(tiny_config(path))  # 24 of 12: fine
    with pytest.raises(ConfigError) as caught:
        validate(tiny_config(path, "task.input_length=30"))
    message = str(caught.value)
    assert "\n" not in message
    assert "task.input_length=30" in message and "model.segment_length=12" in message
    with pytest.raises(ConfigError, match="task.input_length=30 must be a multiple of model.segment_length=12"):
        ForecastTask.from_config(tiny_config(path, "task.input_length=30")).build_model()
