"""Nothing trained is lost: one training per run directory, consistent checkpoints and metrics after a kill at
any checkpoint-writing moment, leftovers cleaned, a full disk and a mismatched resume as one clear line."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import nlpseq.checkpoint as checkpoint
from nlpseq.errors import NlpseqError
from nlpseq.rundir import lock_run_dir, unlock_run_dir
from nlpseq.tasks import TASKS
from nlpseq.trainer import train
from tests.conftest import TINY_MODEL
from tests.test_pipeline import ROOT, kill_at, run_script

RUN = ("trainer.max_steps=24", "trainer.eval_every_steps=6", "trainer.scheduler=linear", "trainer.ema_decay=0.9")


class Killed(BaseException):
    """Stands for SIGKILL: nothing after the raise runs (``except Exception`` blocks do not catch it)."""


def lines(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(ln).items() if k != "elapsed_s"}
            for ln in (run / "metrics.jsonl").read_text().splitlines()]


def weights(run: Path) -> dict:
    return torch.load(run / "checkpoints/last.pt", weights_only=True)["model"]


@pytest.fixture
def straight(ner_config, tmp_path) -> Path:
    cfg = ner_config(*RUN)
    train(TASKS["ner"].from_config(cfg), cfg, tmp_path / "straight")
    return tmp_path / "straight"


@pytest.mark.parametrize("moment", ["before_rename", "after_rename", "after_metrics_line"])
def test_a_kill_at_each_checkpoint_moment_then_resume_equals_the_uninterrupted_run(
        ner_config, tmp_path, monkeypatch, straight, moment):
    run, calls = tmp_path / "killed", {"last": 0}
    real_replace = os.replace

    def replace(src, dst):  # the second write of last.pt (the evaluation at step 12) is interrupted
        is_last = Path(dst).name == "last.pt"
        calls["last"] += is_last
        if is_last and calls["last"] == 2 and moment == "before_rename":
            raise Killed
        real_replace(src, dst)
        if is_last and calls["last"] == 2 and moment == "after_rename":
            raise Killed

    monkeypatch.setattr(checkpoint.os, "replace", replace)
    cfg = ner_config(*RUN)
    task = TASKS["ner"].from_config(cfg)
    if moment == "after_metrics_line":
        kill_at(task, 13)  # the step after the evaluation at step 12 and its line
    with pytest.raises((Killed, KeyboardInterrupt)):
        train(task, cfg, run)
    monkeypatch.setattr(checkpoint.os, "replace", real_replace)
    (run / "checkpoints" / "last.pt12345.tmp").write_bytes(b"half a checkpoint")  # what a kill mid-write leaves
    cfg = ner_config(*RUN)
    train(TASKS["ner"].from_config(cfg), cfg, run)
    assert lines(run) == lines(straight)
    assert all(torch.equal(a, b) for a, b in zip(weights(run).values(), weights(straight).values()))
    assert not list((run / "checkpoints").glob("*.tmp"))


def test_a_full_disk_stops_with_one_line_and_keeps_the_previous_checkpoints(ner_config, tmp_path, monkeypatch):
    cfg = ner_config(*RUN)
    real_save, calls = torch.save, {"n": 0}

    def save(payload, f):
        calls["n"] += 1
        if calls["n"] > 2:  # best.pt and last.pt of the first evaluation are written, then the disk is full
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(payload, f)

    monkeypatch.setattr(checkpoint.torch, "save", save)
    with pytest.raises(NlpseqError) as error:
        train(TASKS["ner"].from_config(cfg), cfg, tmp_path)
    message = str(error.value)
    assert message == f"no space left on {tmp_path / 'checkpoints'} while writing best.pt; the previous checkpoints " \
                      "are intact" or "while writing last.pt" in message
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    assert torch.load(tmp_path / "checkpoints/last.pt", weights_only=True)["train_state"]["step"] == 6
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


def test_checkpoints_follow_the_umask(ner_config, tmp_path):
    previous = os.umask(0o022)
    try:
        cfg = ner_config("trainer.max_steps=2")
        train(TASKS["ner"].from_config(cfg), cfg, tmp_path)
    finally:
        os.umask(previous)
    for name in ("best.pt", "last.pt"):
        assert (tmp_path / "checkpoints" / name).stat().st_mode & 0o777 == 0o644


def test_resuming_a_run_directory_of_another_model_says_how_to_start_fresh(tiny_conll, tmp_path):
    common = ["task=ner", "trainer=debug", "trainer.max_steps=2", "data.download=false", *TINY_MODEL,
              f"hydra.run.dir={tmp_path}/run"]
    assert run_script("train.py", *common, env_root=tiny_conll).returncode == 0
    done = run_script("train.py", *common, "model.hidden_size=24", env_root=tiny_conll)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    error = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert len(error) == 1 and "holds a model of another shape" in error[0] and "trainer.resume=false" in error[0]


def test_an_unloadable_checkpoint_is_one_line_without_unsafe_advice(tmp_path):
    garbage, pickled = tmp_path / "garbage.pt", tmp_path / "object.pt"
    garbage.write_bytes(b"\x00 not a checkpoint" * 10)
    torch.save({"task": "ner", "model": {}, "thing": Path("x")}, pickled)  # a Python object, not plain data
    for path in (garbage, pickled):
        done = run_script("predict.py", f"checkpoint={path}", "input=-", stdin="x\n")
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"error: {path} is not a loadable checkpoint")
        assert "weights_only=False" not in done.stderr


def test_a_second_training_on_the_same_run_directory_is_refused_and_the_first_is_unharmed(tiny_conll, tmp_path):
    run = tmp_path / "run"
    args = ["task=ner", "data.download=false", *TINY_MODEL, "trainer.max_steps=1000000", "trainer.max_epochs=100000",
            "trainer.eval_every_steps=100", f"hydra.run.dir={run}"]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(ROOT), "NLPSEQ_DATA": str(tiny_conll),
           "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, str(ROOT / "scripts/train.py"), *args], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_metrics(run, 1, first)
        hydra_config = (run / ".hydra" / "overrides.yaml").read_text()
        second = run_script("train.py", *args[:-1], "trainer.max_steps=3", f"hydra.run.dir={run}",
                            env_root=tiny_conll)
        assert second.returncode == 1 and "Traceback" not in second.stderr
        assert second.stderr.strip() == (f"error: run directory {run} is in use by another training (process "
                                         f"{first.pid} on {os.uname().nodename}); wait for it to end, or give this "
                                         f"run another hydra.run.dir")
        seen = len(lines(run))
        wait_for_metrics(run, seen + 2, first)  # the owner goes on training and evaluating
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    steps = [r["step"] for r in lines(run)]
    assert steps == list(range(100, 100 * len(steps) + 1, 100))  # its own lines only, in order
    assert (run / ".hydra" / "overrides.yaml").read_text() == hydra_config  # the owner's record, untouched
    lock_run_dir(run)  # the kill released the lock: the next run may start
    unlock_run_dir(run)


def wait_for_metrics(run: Path, n: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not (run / "metrics.jsonl").exists() or len((run / "metrics.jsonl").read_text().splitlines()) < n:
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize("setting, message", [
    ("trainer.lr=abc", "trainer.lr must be a number > 0, got 'abc'"),
    ("model.layers=-1", "model.layers must be an integer >= 1, got -1"),
    ("model.hidden_size=0", "model.hidden_size must be an integer >= 1, got 0"),
    ("trainer.batch_size=0", "trainer.batch_size must be an integer >= 1, got 0"),
    ("device=cuda", "device=cuda but torch.cuda.is_available() is false on this machine"),
])
def test_bad_settings_stop_train_py_with_one_line(tiny_conll, tmp_path, setting, message):
    if setting == "device=cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = run_script("train.py", "task=ner", "data.download=false", setting, f"hydra.run.dir={tmp_path}/run",
                      env_root=tiny_conll)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: {message}") and done.stderr.count("\n") == 1, done.stderr
