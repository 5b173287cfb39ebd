"""trainer.logger: TensorBoard events equal metrics.jsonl (also after a kill and a resume), nothing of TensorBoard is
imported without it, and a missing extra stops at start-up in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import nlpseq.checkpoint as checkpoint
from nlpseq.errors import ConfigError
from nlpseq.schema import validate
from nlpseq.tasks import TASKS
from nlpseq.trainer import train
from tests.test_pipeline import ROOT, kill_at

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

RUN = ("trainer.logger=tensorboard", "trainer.max_steps=16", "trainer.eval_every_steps=4")


class Killed(BaseException):
    """Stands for SIGKILL (as in test_reliability_training)."""


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def events(run: Path):
    accumulator = event_accumulator.EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    accumulator.Reload()
    return accumulator


def assert_events_equal_metrics(run: Path) -> None:
    lines, accumulator = metrics(run), events(run)
    steps = [line["step"] for line in lines]
    expected = {"train/loss": "train_loss", "train/grad_norm": "grad_norm", "train/lr": "lr",
                **{f"dev/{k[4:]}": k for k in lines[0] if k.startswith("dev_")}}
    assert set(accumulator.Tags()["scalars"]) == set(expected)
    assert "dev/f1" in expected
    for tag, key in expected.items():
        scalars = accumulator.Scalars(tag)
        assert [s.step for s in scalars] == steps, tag
        assert [s.value for s in scalars] == pytest.approx([line[key] for line in lines], rel=1e-6), tag


def test_tensorboard_gets_every_evaluation_of_metrics_jsonl_and_the_config(ner_config, tmp_path):
    cfg = ner_config(*RUN)
    validate(cfg)
    train(TASKS["ner"].from_config(cfg), cfg, tmp_path)
    assert [line["step"] for line in metrics(tmp_path)] == [4, 8, 12, 16]
    assert_events_equal_metrics(tmp_path)
    accumulator = events(tmp_path)
    config = [t for t in accumulator.Tags()["tensors"] if t.startswith("config")]
    assert len(config) == 1 and len(accumulator.Tensors(config[0])) == 1
    text = accumulator.Tensors(config[0])[0].tensor_proto.string_val[0].decode()
    assert "logger: tensorboard" in text and "max_steps: 16" in text


@pytest.mark.parametrize("moment", ["after_checkpoint", "after_events"])
def test_a_kill_then_resume_leaves_each_step_once(ner_config, tmp_path, monkeypatch, moment):
    """Killed right after last.pt of step 8 (before its metrics line and events), or at step 10 (after them):
    the resumed run writes step 8 again (purge_step), and the curves equal metrics.jsonl, each step once."""
    calls, real_replace = {"last": 0}, os.replace

    def replace(src, dst):
        real_replace(src, dst)
        calls["last"] += Path(dst).name == "last.pt"
        if calls["last"] == 2 and Path(dst).name == "last.pt" and moment == "after_checkpoint":
            raise Killed

    monkeypatch.setattr(checkpoint.os, "replace", replace)
    cfg = ner_config(*RUN)
    task = TASKS["ner"].from_config(cfg)
    if moment == "after_events":
        kill_at(task, 10)
    with pytest.raises((Killed, KeyboardInterrupt)):
        train(task, cfg, tmp_path)
    monkeypatch.setattr(checkpoint.os, "replace", real_replace)
    assert [line["step"] for line in metrics(tmp_path)] == ([4] if moment == "after_checkpoint" else [4, 8])
    cfg = ner_config(*RUN)
    train(TASKS["ner"].from_config(cfg), cfg, tmp_path)
    assert [line["step"] for line in metrics(tmp_path)] == [4, 8, 12, 16]
    assert_events_equal_metrics(tmp_path)
    assert len(list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))) == 2


def test_logger_none_imports_no_tensorboard(tiny_conll, tmp_path):
    script = f"""
import sys
from tests.conftest import TINY_MODEL, compose_config
from nlpseq.schema import validate
from nlpseq.tasks import TASKS
from nlpseq.trainer import train
cfg = compose_config(["task=ner", "data.root={tiny_conll}", "data.download=false", *TINY_MODEL,
                      "trainer.max_steps=2"])
assert cfg.trainer.logger == "none"
validate(cfg)
train(TASKS["ner"].from_config(cfg), cfg, {str(tmp_path / "run")!r})
print(sorted(m for m in sys.modules if m.split(".")[0] == "tensorboard" or m.startswith("torch.utils.tensorboard")))
"""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "run" / "metrics.jsonl").exists() and not (tmp_path / "run" / "tensorboard").exists()


def test_a_missing_tensorboard_stops_at_start_up_in_one_line(ner_config, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # what an absent package makes of the import
    cfg = ner_config(*RUN)
    with pytest.raises(ConfigError) as error:
        validate(cfg)
    message = str(error.value)
    assert "pip install nlpseq[tensorboard]" in message and "trainer.logger=tensorboard" in message
    assert "\n" not in message
    with pytest.raises(ConfigError, match=r"pip install nlpseq\[tensorboard\]"):  # train() alone, without validate
        train(TASKS["ner"].from_config(cfg), cfg, tmp_path)
    assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "checkpoints" / "last.pt").exists()


def test_an_unknown_logger_is_refused(ner_config):
    with pytest.raises(ConfigError, match="trainer.logger must be one of none, tensorboard, got 'wandb'"):
        validate(ner_config("trainer.logger=wandb"))
