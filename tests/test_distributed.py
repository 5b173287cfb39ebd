"""Training on several processes: the batch plan, DistributedDataParallel steps, ranks that stop together, and
``torchrun`` end to end (train, kill, resume, predict; a rank that dies). Two gloo processes, one thread each."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from omegaconf import OmegaConf
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import nlpseq
from nlpseq.data.batching import batch_plan, bucket_batches, epoch_generator
from nlpseq.errors import ConfigError, TrainingDiverged
from nlpseq.optim import build_optimizer
from nlpseq.runtime import Runtime, start
from nlpseq.tasks import TASKS
from nlpseq.tasks.common import Objective
from nlpseq.trainer import train, train_step
from tests.conftest import TINY_MODEL, compose_config
from tests.test_forecast import tiny_config, write_series

ROOT = Path(__file__).resolve().parents[1]
NO_DROPOUT = ["model.dropout=0", "model.word_dropout=0", "model.singleton_dropout=0"]


# ----- the batch plan -----------------------------------------------------------------------------
def test_batch_plan_is_deterministic_and_its_shards_partition_the_epoch():
    lengths = [(i * 7919) % 23 + 1 for i in range(203)]
    one = batch_plan(lengths, 8, seed=3, epoch=2)
    assert one == batch_plan(lengths, 8, seed=3, epoch=2) != batch_plan(lengths, 8, seed=3, epoch=3)
    assert one == bucket_batches(lengths, 8, True, epoch_generator(3, 2))  # one process: the plain buckets
    for world in (2, 3):
        shards = [batch_plan(lengths, 8, 3, 2, rank, world) for rank in range(world)]
        assert len({len(s) for s in shards}) == 1  # equal step counts: no rank runs out first
        kept = [b for b in one if len(b) >= world]
        assert sorted(i for s in shards for b in s for i in b) == sorted(i for b in kept for i in b)
        for step, batch in enumerate(kept):  # step k of every rank is a share of the same global batch
            assert sorted(i for s in shards for i in s[step]) == sorted(batch)


# ----- in-process workers (torch.multiprocessing, a file:// store) ----------------------------------
def _run_workers(fn, *args, timeout: float = 180.0) -> None:
    """Run ``fn(rank, *args)`` in 2 spawned processes; fail (instead of hanging) when they do not end."""
    context = mp.start_processes(fn, args=args, nprocs=2, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"workers still running after {timeout} s: a rank is waiting for another")


def _join(rank: int, store: str) -> Runtime:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    return Runtime(rank, 2, rank, 2, torch.device("cpu"))


class SparseToy(nn.Module):
    """A 1,500-row embedding table (large enough for sparse gradients) and a linear layer."""

    def __init__(self):
        super().__init__()
        self.table, self.out = nn.Embedding(1500, 8), nn.Linear(8, 1)


def _toy_loss(model: SparseToy, ids: torch.Tensor) -> torch.Tensor:
    return model.out(model.table(ids)).pow(2).mean()


def _setup(kind: str, root: str):
    """``(model, objective, optimizer, [batch of rank 0, batch of rank 1])``, the same in every process."""
    torch.manual_seed(0)
    if kind == "forecast":  # root: a CSV series
        cfg = tiny_config(Path(root), "model.dropout=0")
        task = TASKS["forecast"].from_config(cfg)
        model = task.build_model()
        optimizer = build_optimizer(model, cfg.trainer, torch.device("cpu"))
        return model, task.objective(model), optimizer, [task.collate([0, 1, 2, 3], 0), task.collate([4, 5, 6], 0)]
    if kind == "ner":
        cfg = compose_config(["task=ner", f"data.root={root}", "data.download=false", *TINY_MODEL, *NO_DROPOUT])
        task = TASKS["ner"].from_config(cfg)
        model = task.build_model()
        optimizer = build_optimizer(model, cfg.trainer, torch.device("cpu"))
        return model, task.objective(model), optimizer, [task.collate([0, 1, 2, 3], 0), task.collate([4, 5, 6], 0)]
    model = SparseToy()
    settings = OmegaConf.create({"optimizer": "adam", "lr": 0.01, "betas": [0.9, 0.999], "weight_decay": 0.0,
                                 "sparse_embeddings": True})
    optimizer = build_optimizer(model, settings, torch.device("cpu"))
    assert model.table.sparse
    return model, Objective(model, _toy_loss), optimizer, [torch.tensor([[1, 5, 5, 9]]), torch.tensor([[5, 700]])]


def _ddp_step_worker(rank: int, store: str, kind: str, root: str, out: str) -> None:
    runtime = _join(rank, store)
    model, objective, optimizer, batches = _setup(kind, root)
    train_step(DistributedDataParallel(objective), optimizer, [batches[rank]], runtime=runtime)
    if rank == 0:
        torch.save(model.state_dict(), out)
    dist.destroy_process_group()


@pytest.mark.parametrize("kind", ["ner", "sparse", "forecast"])
def test_a_ddp_step_equals_one_step_on_the_mean_of_the_two_losses(kind, tiny_conll, tmp_path):
    root = str(write_series(tmp_path / "series.csv") if kind == "forecast" else tiny_conll)
    _run_workers(_ddp_step_worker, str(tmp_path / "store"), kind, root, str(tmp_path / "rank0.pt"))
    model, objective, optimizer, batches = _setup(kind, root)
    optimizer.zero_grad()
    ((objective(batches[0]) + objective(batches[1])) / 2).backward()
    optimizer.step()
    distributed = torch.load(tmp_path / "rank0.pt", weights_only=True)
    moved = 0
    for name, weight in model.state_dict().items():
        torch.testing.assert_close(distributed[name], weight, rtol=0, atol=1e-6, msg=name)
        moved += int(not torch.equal(weight, _setup(kind, root)[0].state_dict()[name]))
    assert moved >= 2  # the step changed the weights


def _train_worker(rank: int, store: str, root: str, run_dir: str, scenario: str) -> None:
    runtime = _join(rank, store)
    overrides = ["trainer.max_steps=40", "trainer.eval_every_steps=4", "trainer.patience=2", "trainer.lr=1e-12"] \
        if scenario == "patience" else ["trainer.max_steps=40", "trainer.eval_every_steps=4"]
    cfg = compose_config(["task=ner", f"data.root={root}", "data.download=false", *TINY_MODEL, *overrides])
    task = TASKS["ner"].from_config(cfg)
    if scenario == "nan" and rank == 1:  # only rank 1 sees a non-finite loss, at its 6th step
        make, calls = task.objective, {"n": 0}

        def objective(model):
            inner = make(model)

            def loss(model_, batch):
                calls["n"] += 1
                value = inner.loss(model_, batch)
                return value * math.nan if calls["n"] == 6 else value

            return Objective(model, loss)

        task.objective = objective
    try:
        result = train(task, cfg, run_dir, runtime)
        outcome = {"steps": result["steps"], "best": result["best_score"]}
    except TrainingDiverged as e:
        outcome = {"error": str(e)}
    Path(run_dir, f"outcome{rank}.json").write_text(json.dumps(outcome))
    dist.destroy_process_group()


@pytest.mark.parametrize("device", ["auto", "cuda", "cuda:0"])
def test_more_processes_than_gpus_is_refused_before_nccl(device, monkeypatch):
    """On a 1-GPU machine two ranks would share cuda:0, which NCCL refuses inside the first collective."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=rf"torchrun started 2 processes on this machine but device={device} gives "
                                          r"them 1 GPU\(s\).*--nproc_per_node=1, or device=cpu"):
        start(device, 1)
    assert not dist.is_initialized()


def test_a_nan_loss_in_one_rank_stops_every_rank_at_the_same_step(tiny_conll, tmp_path):
    _run_workers(_train_worker, str(tmp_path / "store"), str(tiny_conll), str(tmp_path / "run"), "nan")
    outcomes = [json.loads((tmp_path / "run" / f"outcome{r}.json").read_text()) for r in (0, 1)]
    assert outcomes[0] == outcomes[1] and outcomes[0]["error"].startswith("loss is nan at epoch 1, step 6;")
    saved = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=True)
    assert saved["train_state"]["step"] == 4 and len(saved["rng_per_rank"]) == 2


def test_early_stopping_stops_every_rank_together(tiny_conll, tmp_path):
    _run_workers(_train_worker, str(tmp_path / "store"), str(tiny_conll), str(tmp_path / "run"), "patience")
    outcomes = [json.loads((tmp_path / "run" / f"outcome{r}.json").read_text()) for r in (0, 1)]
    assert outcomes[0] == outcomes[1] and outcomes[0]["steps"] == 12  # 1 best + 2 evaluations without progress
    assert len((tmp_path / "run/metrics.jsonl").read_text().splitlines()) == 3  # rank 0 alone writes


# ----- torchrun end to end ------------------------------------------------------------------------
TORCHRUN_TRAINING = ["task=ner", "device=cpu", "data.download=false", *TINY_MODEL, "trainer.max_steps=240",
                     "trainer.eval_every_steps=30", "trainer.scheduler=linear", "trainer.ema_decay=0.9"]


def torchrun(run_dir: Path, root: Path, *overrides: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NLPSEQ_DATA": str(root), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--rdzv-backend=c10d",
               "--rdzv-endpoint=localhost:0", str(ROOT / "scripts/train.py"), *TORCHRUN_TRAINING,
               f"hydra.run.dir={run_dir}", *overrides]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def finish(process: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"torchrun still running after {timeout} s")
    return process.returncode, out, err


def wait_for_lines(path: Path, n: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and len(path.read_text().splitlines()) >= n):
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"no {n} lines in {path} after {timeout} s"
        time.sleep(0.02)


def metric_lines(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_torchrun_trains_is_killed_resumes_exactly_and_its_model_predicts(tiny_conll, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    code, out, err = finish(torchrun(straight, tiny_conll))
    assert code == 0, err[-3000:]
    assert out.strip().splitlines()[-1].startswith(f"best checkpoint: {straight}/checkpoints/best.pt")
    assert len(metric_lines(straight)) == 8 and not (ROOT / ".hydra").exists()

    process = torchrun(resumed, tiny_conll)
    wait_for_lines(resumed / "metrics.jsonl", 2, process)
    for pid in [*_worker_pids(process.pid).values(), process.pid]:  # both ranks and the launcher, mid-run
        os.kill(pid, signal.SIGKILL)
    process.communicate()
    killed_at = len(metric_lines(resumed))
    assert killed_at < 8
    code, _, err = finish(torchrun(resumed, tiny_conll))
    assert code == 0 and "resumed from" in (resumed / "train.log").read_text(), err[-3000:]

    assert metric_lines(resumed) == metric_lines(straight)
    a = torch.load(straight / "checkpoints/last.pt", weights_only=True)
    b = torch.load(resumed / "checkpoints/last.pt", weights_only=True)
    assert a["world_size"] == 2 and len(a["rng_per_rank"]) == 2
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    tagger = nlpseq.load(straight / "checkpoints/best.pt")
    result = tagger.predict(["John Smith visited Paris ."])[0]
    assert result["tokens"] == ["John", "Smith", "visited", "Paris", "."] and len(result["tags"]) == 5


def _worker_pids(launcher: int) -> dict[int, int]:
    """``{local rank: pid}`` of the launcher's worker processes."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        ranks = [v.split(b"=", 1)[1] for v in environ if v.startswith(b"LOCAL_RANK=")]
        if parent == launcher and ranks:
            out[int(ranks[0])] = int(entry.name)
    return out


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_a_rank_that_dies_ends_the_job_with_an_error(tiny_conll, tmp_path):
    process = torchrun(tmp_path / "run", tiny_conll, "trainer.max_steps=100000", "trainer.max_epochs=100000")
    wait_for_lines(tmp_path / "run" / "metrics.jsonl", 1, process)
    workers = _worker_pids(process.pid)
    assert set(workers) == {0, 1}
    os.kill(workers[1], signal.SIGKILL)
    start = time.monotonic()
    code, _, _ = finish(process, timeout=60)
    assert code != 0 and time.monotonic() - start < 60
