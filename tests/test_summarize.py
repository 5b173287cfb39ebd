"""scripts/summarize.py on made-up run directories: the means, the deviations, and every missing run named."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import yaml

from nlpseq.commands.summarize import main
from nlpseq.summarize import mean_std, summarize

SETTING = ["task=ner", "model=tagger_glove"]


def make_run(path: Path, seed: int, dev: list[float], test: float | None, wall_s: float | None = 600.0,
             commit: str = "abc1234", **machine: object) -> Path:
    """A run directory as train.py and evaluate.py leave it; ``dev`` is the dev F1 of each epoch."""
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([*SETTING, f"seed={seed}"]))
    (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"task": {"name": "ner"}, "seed": seed}))
    best = [d > max(dev[:i], default=-1.0) for i, d in enumerate(dev)]
    (path / "metrics.jsonl").write_text("".join(
        json.dumps({"epoch": i + 1, "metric": "f1", "dev_f1": d, "best": b}) + "\n"
        for i, (d, b) in enumerate(zip(dev, best))))
    (path / "run.json").write_text(json.dumps({"runs": [{"commit": commit, "cpu": "Test CPU", "wall_s": wall_s,
                                                                **machine}]}))
    if test is not None:
        (path / "scores").mkdir()
        (path / "scores" / "test.json").write_text(json.dumps({"scores": {"f1": test, "precision": 1.0}}))
    return path


def sweep(root: Path, jobs: int, expected: int | None = None) -> Path:
    """A Hydra sweep directory of ``expected`` jobs (its multirun.yaml) holding the first ``jobs`` of them."""
    root.mkdir()
    seeds = ",".join(str(s) for s in range(1, (expected or jobs) + 1))
    (root / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": [*SETTING,
                                                                                          f"seed={seeds}"]}}}))
    for job in range(jobs):
        make_run(root / str(job), job + 1, [80.0 + job, 90.0 + job, 89.0], 88.0 + 0.5 * job)
    return root


def test_mean_and_standard_deviation_over_seeds(tmp_path):
    table, missing = summarize([str(sweep(tmp_path / "ner", 3))], ["test.json"])
    assert missing == 0
    header, _, row = table.splitlines()
    assert header.startswith("| configuration | seeds | dev f1 | test f1 | epochs (best)")
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:2] == ["task=ner model=tagger_glove", "1, 2, 3"]
    # dev: the selected (best) epoch's score of each run: 90, 91, 92; test: 88.0, 88.5, 89.0
    assert cells[2] == f"91.00 ± {statistics.stdev([90, 91, 92]):.2f}" == "91.00 ± 1.00"
    assert cells[3] == f"88.50 ± {statistics.stdev([88.0, 88.5, 89.0]):.2f}" == "88.50 ± 0.50"
    assert cells[4] == "3 (2), 3 (2), 3 (2)"
    assert cells[5] == "10.0 ± 0.0 min (Test CPU)"
    assert cells[6] == "`python scripts/train.py -m task=ner model=tagger_glove seed=1,2,3`"
    assert cells[7] == "abc1234"


def test_wall_times_name_the_gpu_and_the_process_count(tmp_path):
    make_run(tmp_path / "gpu", 1, [90.0], 88.0, device="NVIDIA H200", processes=1)
    make_run(tmp_path / "ddp", 2, [90.0], 88.0, device="cpu", processes=2)
    cells = summarize([str(tmp_path / "gpu"), str(tmp_path / "ddp")], ["test.json"])[0].splitlines()[2].split("|")
    assert cells[6].strip() == "10.0 ± 0.0 min (NVIDIA H200 + Test CPU, Test CPU, 2 processes)"


def test_missing_runs_are_named_and_left_out_of_the_means(tmp_path):
    root = sweep(tmp_path / "ner", 2, expected=4)  # jobs 2 and 3 never ran
    make_run(root / "2", 3, [85.0], None)  # trained, not evaluated
    make_run(tmp_path / "killed", 4, [70.0], 60.0, wall_s=None)  # killed before the end of its training
    table, missing = summarize([str(root), str(tmp_path / "killed"), str(tmp_path / "nothing")], ["test.json"])
    assert missing == 4
    row = table.splitlines()[2]
    assert "| 1, 2 |" in row and "| 90.50 ± 0.71 |" in row and "| 88.25 ± 0.35 |" in row, row
    notes = table.split("missing (left out of the means above):")[1]
    assert "jobs 3 of 4 are missing" in notes
    assert f"{root / '2'} (seed 3): no scores/test.json (python scripts/evaluate.py checkpoint={root / '2'}/" \
           "checkpoints/best.pt split=test)" in notes
    assert f"{tmp_path / 'killed'} (seed 4): training not finished" in notes
    assert f"{tmp_path / 'nothing'}: not a run or sweep directory" in notes


def test_the_command_line_exits_nonzero_when_runs_are_missing(tmp_path, capsys):
    root = sweep(tmp_path / "ner", 1, expected=2)
    assert main([str(root)]) == 1
    assert "jobs 1 of 2 are missing" in capsys.readouterr().out
    make_run(root / "1", 2, [91.0], 88.0)
    assert main([str(root), "--scores", "test.json", "--metrics", "f1", "precision"]) == 0
    out = capsys.readouterr().out
    assert "| test f1 | test precision |" in out and "| 88.00 ± 0.00 | 1.00 ± 0.00 |" in out


def test_one_run_shows_no_deviation():
    assert mean_std([90.123]) == "90.12" and mean_std([]) == "–"


def test_evaluate_scores_on_dev_are_told_apart_from_the_selection_score(tmp_path):
    root = sweep(tmp_path / "ner", 2)
    for job in range(2):
        (root / str(job) / "scores" / "dev.json").write_text(json.dumps({"scores": {"f1": 95.0 + job}}))
    table, missing = summarize([str(root)], ["dev.json", "test.json"], ["f1"])
    assert missing == 0
    header, _, row = table.splitlines()
    assert header.startswith("| configuration | seeds | dev f1 | dev f1 (evaluate.py) | test f1 | epochs (best)")
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:5] == ["90.50 ± 0.71", "95.50 ± 0.71", "88.25 ± 0.35"]
