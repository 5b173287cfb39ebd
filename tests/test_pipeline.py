"""NER end to end: train -> save -> load -> predict, exact resume, divergence, and the three scripts."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import nlpseq
from nlpseq.errors import NlpseqError, TrainingDiverged
from nlpseq.tasks import TASKS
from nlpseq.tasks.common import Objective
from nlpseq.trainer import train

ROOT = Path(__file__).resolve().parents[1]


def test_train_save_load_predict_round_trip(ner_config, tmp_path):
    cfg = ner_config("trainer.max_steps=30", "trainer.lr=0.01")
    task = TASKS["ner"].from_config(cfg)
    result = train(task, cfg, tmp_path)
    assert Path(result["best_checkpoint"]).exists() and (tmp_path / "checkpoints" / "last.pt").exists()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 30 and "dev_f1" in records[-1] and "grad_norm" in records[-1]

    raw = torch.load(result["best_checkpoint"], weights_only=True)  # plain data only
    assert raw["task"] == "ner" and raw["config"]["model"]["hidden_size"] == 16
    tagger = nlpseq.load(result["best_checkpoint"])
    model = task.build_model()
    model.load_state_dict(raw["model"])
    texts = ["John Smith visited Paris .", "Mary Jones praised the EU Commission ."]
    expected = task.predict_tags(model, [t.split() for t in texts])
    got = tagger.predict(texts)
    assert [r["tags"] for r in got] == expected
    assert got[0]["tokens"] == ["John", "Smith", "visited", "Paris", "."]
    for r in got:
        for e in r["entities"]:
            assert r["text"][e["start"]:e["end"]] == e["text"]
    with pytest.raises(NlpseqError, match="input 2 is empty"):
        tagger.predict(["John left .", "  "])


def test_learns_the_tiny_corpus(ner_config, tmp_path):
    cfg = ner_config("trainer.max_epochs=12", "trainer.lr=0.01", "model.dropout=0.1")
    result = train(TASKS["ner"].from_config(cfg), cfg, tmp_path)
    assert result["best_score"] > 80.0  # the made-up corpus is easy; a broken model stays near 0


def patch_loss(task, change):
    """Make the task's objective return ``change(n, loss)`` for its n-th loss (1-based)."""
    make, calls = task.objective, {"n": 0}

    def objective(model):
        inner = make(model)

        def loss(model_, batch):
            calls["n"] += 1
            return change(calls["n"], inner.loss(model_, batch))

        return Objective(model, loss)

    task.objective = objective


def kill_at(task, step: int):
    """Make the task's loss raise at the given (1-based) step, as if the process were killed there."""

    def change(n, loss):
        if n == step:
            raise KeyboardInterrupt
        return loss

    patch_loss(task, change)


def test_kill_and_resume_reaches_the_same_state(ner_config, tmp_path):
    overrides = ("trainer.max_steps=40", "trainer.eval_every_steps=10", "trainer.scheduler=linear",
                 "trainer.ema_decay=0.9")
    cfg = ner_config(*overrides)
    train(TASKS["ner"].from_config(cfg), cfg, tmp_path / "straight")

    cfg = ner_config(*overrides)
    task = TASKS["ner"].from_config(cfg)
    kill_at(task, 27)  # after the step-20 checkpoint; steps 21-26 are lost and redone
    with pytest.raises(KeyboardInterrupt):
        train(task, cfg, tmp_path / "resumed")
    train(TASKS["ner"].from_config(cfg), cfg, tmp_path / "resumed")

    a = torch.load(tmp_path / "straight/checkpoints/last.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed/checkpoints/last.pt", weights_only=True)
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    strip = lambda path: [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"}  # noqa: E731
                          for line in path.read_text().splitlines()]
    assert strip(tmp_path / "straight/metrics.jsonl") == strip(tmp_path / "resumed/metrics.jsonl")


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(ner_config, tmp_path):
    cfg = ner_config("trainer.max_steps=40", "trainer.eval_every_steps=5")
    task = TASKS["ner"].from_config(cfg)
    patch_loss(task, lambda n, loss: loss * math.nan if n == 8 else loss)
    with pytest.raises(TrainingDiverged, match="loss is nan at epoch 1, step 8"):
        train(task, cfg, tmp_path)
    assert torch.load(tmp_path / "checkpoints/last.pt", weights_only=True)["train_state"]["step"] == 5


@pytest.mark.parametrize("overrides", [("model.cell=gru", "model.char_encoder=lstm"),
                                       ("model.cell=rnn", "model.crf=false", "model.char_encoder=none",
                                        "model.layers=2", "model.bidirectional=false", "trainer.optimizer=sgd")])
def test_variants_train_a_step(ner_config, tmp_path, overrides):
    cfg = ner_config("trainer.max_steps=2", *overrides)
    assert train(TASKS["ner"].from_config(cfg), cfg, tmp_path)["steps"] == 2


def run_script(name: str, *args: str, stdin: str | None = None, env_root: Path | None = None,
               extra_env: dict | None = None):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(ROOT), **(extra_env or {})}
    if env_root:
        env["NLPSEQ_DATA"] = str(env_root)
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], input=stdin, capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)


def test_scripts_end_to_end(tiny_conll, tmp_path):
    from tests.conftest import TINY_MODEL

    run = tmp_path / "run"
    done = run_script("train.py", "task=ner", "trainer=debug", "trainer.max_steps=6", *TINY_MODEL,
                      "data.download=false", f"hydra.run.dir={run}", env_root=tiny_conll)
    assert done.returncode == 0, done.stderr
    last_line = done.stdout.strip().splitlines()[-1]
    assert last_line.startswith(f"best checkpoint: {run}/checkpoints/best.pt (dev f1 ")
    assert (run / "checkpoints/last.pt").exists() and (run / "metrics.jsonl").exists()
    best = run / "checkpoints" / "best.pt"

    output = tmp_path / "test.conll"
    done = run_script("evaluate.py", f"checkpoint={best}", "split=test", f"output={output}", env_root=tiny_conll)
    assert done.returncode == 0, done.stderr
    assert "micro avg" in done.stdout and "PER" in done.stdout
    blocks = output.read_text().strip().split("\n\n")
    assert len(blocks) == 12 and all(len(line.split()) == 3 for line in blocks[0].splitlines())
    # the scores land in the run directory, beside where the training recorded its commit and wall time
    scores = json.loads((run / "scores" / "test.json").read_text())
    assert f"entity F1 {scores['scores']['f1']:.2f}" in done.stdout and scores["examples"] == 12
    record = json.loads((run / "run.json").read_text())["runs"][0]
    assert record["wall_s"] > 0 and record["cpu"] and "trainer.max_steps=6" in record["overrides"]
    assert record["processes"] == 1 and (record["device"] == "cpu" or record["device"].startswith("NVIDIA"))
    from nlpseq.summarize import summarize

    table, missing = summarize([str(run)], ["test.json"])
    assert missing == 0 and f"| {scores['scores']['f1']:.2f} |" in table, table
    done = run_script("evaluate.py", f"checkpoint={best}", f"file={tiny_conll}/conll2003/valid.txt")
    assert done.returncode == 0 and "micro avg" in done.stdout, done.stderr

    raw = tmp_path / "raw.txt"
    raw.write_text("John Smith visited Paris.\nMary left Tokyo .\n", encoding="utf-8")
    done = run_script("predict.py", f"checkpoint={best}", f"input={raw}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n\n")[0].splitlines()[3].split()[0] == "Paris"
    done = run_script("predict.py", f"checkpoint={best}", "input=-", "format=jsonl", stdin="Anna Berg left Berlin .\n")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["tokens"] == ["Anna", "Berg", "left", "Berlin", "."] and len(result["tags"]) == 5

    raw.write_text("John left .\n\nMary left .\n", encoding="utf-8")
    done = run_script("predict.py", f"checkpoint={best}", f"input={raw}")
    assert done.returncode == 1 and f"{raw}:2: is an empty line" in done.stderr and "Traceback" not in done.stderr


def test_scripts_report_bad_input_without_tracebacks(tiny_conll, tmp_path):
    done = run_script("train.py", "task=ner", "model.hiden_size=3", env_root=tiny_conll)
    assert done.returncode != 0 and "model.hiden_size" in done.stderr and "Traceback" not in done.stderr
    bad = tiny_conll / "conll2003" / "train.txt"
    bad.write_text("EU B-ORG\nrejects O O\n", encoding="utf-8")
    done = run_script("train.py", "task=ner", "trainer=debug", "data.download=false",
                      f"hydra.run.dir={tmp_path}/run", env_root=tiny_conll)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{bad}:2: expected 2 columns like the lines before, got 3" in done.stderr
    done = run_script("predict.py", f"checkpoint={tmp_path}/missing.pt", "input=-", stdin="x\n")
    assert done.returncode == 1 and "missing.pt not found" in done.stderr


def test_multirun_sweep_over_cells(tiny_conll, tmp_path):
    from tests.conftest import TINY_MODEL

    done = run_script("train.py", "-m", "task=ner", "model.cell=rnn,gru", "trainer=debug", "trainer.max_steps=2",
                      *TINY_MODEL, "data.download=false", f"hydra.sweep.dir={tmp_path}", env_root=tiny_conll)
    assert done.returncode == 0, done.stderr
    runs = sorted(p.parent.parent for p in tmp_path.glob("*/checkpoints/best.pt"))
    assert len(runs) == 2
    assert "model.cell=gru" in (runs[1] / ".hydra" / "overrides.yaml").read_text()
