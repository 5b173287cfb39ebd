"""One trainer for every task and every process count: the loop, evaluation, early stopping, checkpoints and
exact resume. The task side of the loop is the contract in :mod:`nlpseq.contract`.

Under ``torchrun`` each process runs this same loop on its share of every batch (:func:`batch_plan`); the
objective is wrapped in ``DistributedDataParallel``, so gradients are averaged over ranks at each backward.
Every value a decision depends on (the loss, the dev scores, the time limit) is agreed over ranks first.
"""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from nlpseq.averaging import WeightAverage
from nlpseq.checkpoint import TrainingCheckpoint
from nlpseq.contract import TrainingTask, check_task
from nlpseq.data.batching import batch_plan, move_batch
from nlpseq.distributed import any_rank, mean_over_ranks, sum_over_ranks
from nlpseq.errors import TrainingDiverged
from nlpseq.loggers import NoLogger, open_logger, scalars
from nlpseq.metrics import show_score
from nlpseq.optim import build_optimizer, build_scheduler, clip_gradients, densify_gradients, use_sparse_embeddings
from nlpseq.precision import Precision
from nlpseq.provenance import record_progress
from nlpseq.rundir import lock_run_dir, remove_partial_files, unlock_run_dir
from nlpseq.runtime import Runtime, flush_denormals, start
from nlpseq.threads import thread_governor

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    epoch: int = 0  # epochs started before the current one
    step: int = 0  # optimizer steps taken
    batch_in_epoch: int = 0  # optimizer steps of the current epoch already taken
    best_score: float | None = None
    best_epoch: int = 0
    best_step: int = 0
    bad_evals: int = 0
    last_eval_step: int = -1
    elapsed: float = 0.0  # training seconds, summed over resumed runs


def train_step(objective: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: list, clip: float = math.inf,
               average: WeightAverage | None = None, precision: Precision | None = None,
               runtime: Runtime | None = None, densify: list[torch.nn.Parameter] = ()) -> tuple[float, float]:
    """One optimizer step over ``batches`` (``trainer.accumulate`` of them; their losses are averaged):
    forward, backward, gradient clipping, update, weight average. ``scripts/benchmark.py`` times this.

    Returns ``(loss, gradient norm before clipping)``, the loss averaged over ranks. A non-finite loss on any
    rank raises :class:`TrainingDiverged` on every rank before any gradient is computed. ``densify`` lists the
    parameters whose gradients travel sparse between ranks but which the optimizer updates densely.
    """
    precision, runtime = precision or Precision(32, torch.device("cpu")), runtime or Runtime()
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for i, batch in enumerate(batches):
        accumulating = i < len(batches) - 1 and isinstance(objective, DistributedDataParallel)
        with objective.no_sync() if accumulating else nullcontext():  # gradients are averaged at the last one
            with precision.autocast():
                loss = objective(batch)
            value = mean_over_ranks(loss.item(), runtime)
            if not math.isfinite(value):
                raise TrainingDiverged(f"loss is {value}")
            precision.backward(loss / len(batches) if len(batches) > 1 else loss)
        total += value
    densify_gradients(densify)
    precision.unscale(optimizer)
    grad_norm = clip_gradients([p for p in objective.parameters() if p.grad is not None], clip)
    if average is not None:
        average.before_step()
    precision.step(optimizer)
    if average is not None:
        average.update()
    return total / len(batches), grad_norm


class Trainer:
    """The training of one task in this process: everything is built in ``__init__`` (and restored from
    ``last.pt`` when resuming); :meth:`fit` runs the epochs."""

    def __init__(self, task: TrainingTask, cfg: DictConfig, run_dir: str | Path, runtime: Runtime):
        check_task(task)
        self.task, self.cfg, self.tc, self.rt = task, cfg, cfg.trainer, runtime
        tc, rt = self.tc, runtime
        torch.manual_seed(int(cfg.seed))
        self.model = model = task.build_model().to(rt.device)
        if rt.rank:  # the same initial weights everywhere, but each rank its own dropout masks
            torch.manual_seed(int(cfg.seed) + 7919 * rt.rank)
        sparse_ok = rt.backend != "nccl"  # NCCL cannot all-reduce sparse gradients; gloo can
        if not sparse_ok and tc.get("sparse_embeddings"):
            log.info("trainer.sparse_embeddings switched off: the %s backend cannot reduce sparse gradients",
                     rt.backend)
        self.optimizer = build_optimizer(model, tc, rt.device, pretrained=bool(cfg.model.get("pretrained_vectors")),
                                         sparse_ok=sparse_ok)
        self.objective, self.densify = task.objective(model), []
        if rt.distributed:
            if sparse_ok:  # sparse all-reduce of the tables' rows in the batch; the optimizer still sees dense ones
                self.densify = use_sparse_embeddings(model)
            self.objective = DistributedDataParallel(self.objective)
        self.lengths = task.train_lengths()
        total = tc.max_steps or tc.max_epochs * (len(self.plan(0)) if tc.scheduler == "linear" else 0)
        self.scheduler, self.when = build_scheduler(self.optimizer, tc, total)
        self.average = WeightAverage(model, tc.ema_decay) if tc.ema_decay else None
        self.precision = Precision(tc.get("precision", 32), rt.device)
        self.clip = float(tc.clip_norm) if tc.clip_norm else math.inf
        self.pin = rt.device.type == "cuda" and str(tc.get("pin_memory", "auto")) in ("auto", "true", "True")
        self.ckpt = TrainingCheckpoint(Path(run_dir), task, cfg, model, self.optimizer, self.scheduler, self.average,
                                       self.precision, rt)
        if rt.is_main:  # the run directory is this run's alone; a kill may have left half-written files
            lock_run_dir(run_dir)
            remove_partial_files(self.ckpt.directory)
        self.state = TrainState()
        if tc.resume and self.ckpt.last_path.exists():
            self.state = TrainState(**self.ckpt.restore())
            log.info("resumed from %s at epoch %d, step %d", self.ckpt.last_path, self.state.epoch + 1,
                     self.state.step)
        log.info("model: %s parameters on %s\n%s", f"{sum(p.numel() for p in model.parameters()):,}", rt.device,
                 model)
        self.window = {"loss": 0.0, "grad_norm": 0.0, "batches": 0}  # averaged since the last evaluation
        # trainer.num_threads=auto: the thread count is re-decided as the machine's load changes
        self.governor = thread_governor(tc.num_threads, rt.device, rt.local_world_size)
        self.metrics_file, self.logger = None, NoLogger()

    def plan(self, epoch: int) -> list[list[list[int]]]:
        """This rank's optimizer steps of ``epoch``, each a list of ``trainer.accumulate`` batches of indices."""
        tc, accumulate = self.tc, int(self.tc.get("accumulate", 1))
        batches = batch_plan(self.lengths, int(tc.batch_size), int(self.cfg.seed), epoch, self.rt.rank,
                             self.rt.world_size, tc.get("batch_tokens"))
        return [batches[i:i + accumulate] for i in range(0, len(batches), accumulate)]

    def fit(self) -> dict:
        """Train until ``max_epochs``, ``max_steps``, ``max_minutes`` or early stopping; returns the summary."""
        tc, state = self.tc, self.state
        if self.rt.is_main:  # TensorBoard etc. (trainer.logger) see what metrics.jsonl gets
            self.logger = open_logger(tc.get("logger", "none"), self.ckpt.run_dir, self.cfg, state.step)
        self.metrics_file = open(self.ckpt.run_dir / "metrics.jsonl", "a", encoding="utf-8") \
            if self.rt.is_main else None
        self.model.train()
        stop = state.step >= (tc.max_steps or math.inf) or bool(tc.patience and state.bad_evals >= tc.patience)
        try:
            while not stop and state.epoch < tc.max_epochs:
                stop = self.run_epoch()
        finally:
            if self.metrics_file is not None:
                self.metrics_file.close()
            self.logger.close()
        unlock_run_dir(self.ckpt.run_dir)
        return {"best_checkpoint": str(self.ckpt.best_path), "best_score": state.best_score,
                "metric": self.task.metric, "best_epoch": state.best_epoch, "epochs": state.epoch,
                "steps": state.step, "elapsed_s": state.elapsed}

    def run_epoch(self) -> bool:
        """The rest of the current epoch, with the evaluations it calls for; returns True when training stops."""
        tc, rt, state = self.tc, self.rt, self.state
        steps = self.plan(state.epoch)
        bar = tqdm(total=len(steps), desc=f"epoch {state.epoch + 1}", initial=state.batch_in_epoch, leave=False,
                   disable=not (tc.progress_bar and rt.is_main), dynamic_ncols=True)
        start, tokens, stop = time.perf_counter(), 0, False
        for i in range(state.batch_in_epoch, len(steps)):  # resumed mid-epoch: the steps before were taken
            tokens += self.step(steps[i], bar, start, tokens)
            state.batch_in_epoch = i + 1
            if tc.max_steps and state.step >= tc.max_steps:
                stop = True
            elif tc.max_minutes and any_rank(state.elapsed > 60 * tc.max_minutes, rt):
                log.info("stopping: trainer.max_minutes=%s reached", tc.max_minutes)
                stop = True
            elif tc.eval_every_steps and state.step % tc.eval_every_steps == 0:
                stop = self.evaluate(state.epoch + 1)
            if stop:
                break
        bar.close()
        finished = state.batch_in_epoch >= len(steps)
        if finished:
            total = sum_over_ranks({"tokens": tokens}, rt)["tokens"]
            log.info("epoch %d: %.0f tokens/s", state.epoch + 1, total / max(time.perf_counter() - start, 1e-9))
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
            if self.scheduler is not None and self.when == "epoch":
                self.scheduler.step()
        if (finished and not tc.eval_every_steps) or (stop and state.last_eval_step != state.step):
            stop = self.evaluate(state.epoch if finished else state.epoch + 1) or stop
        return stop

    def step(self, batches: list[list[int]], bar: tqdm, epoch_start: float, epoch_tokens: int) -> int:
        """One optimizer step on ``batches`` (example indices); returns the tokens trained on."""
        state, device = self.state, self.rt.device
        t0 = time.perf_counter()
        collated = [move_batch(self.task.collate(b, state.epoch), device, self.pin) for b in batches]
        try:
            loss, grad_norm = train_step(self.objective, self.optimizer, collated, self.clip, self.average,
                                         self.precision, self.rt, self.densify)
        except TrainingDiverged as e:
            raise TrainingDiverged(
                f"{e} at epoch {state.epoch + 1}, step {state.step + 1}; stopped. The last good checkpoint "
                f"is kept in {self.ckpt.directory}. Try a lower trainer.lr or trainer.clip_norm.") from None
        if self.scheduler is not None and self.when == "step":
            self.scheduler.step()
        state.step += 1
        seconds = time.perf_counter() - t0
        state.elapsed += seconds
        self.window["loss"] += loss
        self.window["grad_norm"] += grad_norm if math.isfinite(grad_norm) else 0.0
        self.window["batches"] += 1
        tokens = sum(b.num_tokens for b in collated)
        if self.governor is not None:
            self.governor.step_done(tokens, seconds)
        bar.update(1)
        if bar.n % 10 == 0:
            rate = (epoch_tokens + tokens) / max(time.perf_counter() - epoch_start, 1e-9)
            bar.set_postfix(loss=f"{loss:.3f}", gnorm=f"{grad_norm:.2f}", tok_s=f"{rate:,.0f}")
        return tokens

    def evaluate(self, epoch: int) -> bool:
        """Score on dev (all ranks), log, checkpoint (rank 0); returns True when early stopping says stop."""
        task, state, rt = self.task, self.state, self.rt
        with self.average.applied() if self.average is not None else nullcontext():  # best.pt is averaged
            scores = task.scores(sum_over_ranks(task.validation_stats(self.model, rt.rank, rt.world_size), rt))
            score = float(scores[task.metric])
            best = state.best_score
            improved = best is None or (score > best if task.higher_is_better else score < best)
            if improved:
                state.best_score, state.best_epoch, state.best_step, state.bad_evals = score, epoch, state.step, 0
                self.ckpt.save_best(state)
            else:
                state.bad_evals += 1
        state.last_eval_step = state.step
        if self.scheduler is not None and self.when == "eval":
            self.scheduler.step(score if task.higher_is_better else -score)
        n = max(self.window["batches"], 1)
        record = {"epoch": epoch, "step": state.step, "metric": task.metric, "train_loss": self.window["loss"] / n,
                  "grad_norm": self.window["grad_norm"] / n, "lr": self.optimizer.param_groups[0]["lr"],
                  **{f"dev_{k}": v for k, v in scores.items()}, "best": improved, "elapsed_s": round(state.elapsed, 1)}
        self.ckpt.save_last(state, record)
        record_progress(self.ckpt.run_dir)
        if self.metrics_file is not None:
            self.metrics_file.write(json.dumps(record) + "\n")
            self.metrics_file.flush()
        self.logger.log_scalars(state.step, scalars(record))
        log.info("epoch %d step %d: train loss %.4f, dev %s %s%s", epoch, state.step, record["train_loss"],
                 task.metric, show_score(score), " (best)" if improved else "")
        self.window.update(loss=0.0, grad_norm=0.0, batches=0)
        return bool(self.tc.patience) and state.bad_evals >= self.tc.patience


def train(task: TrainingTask, cfg: DictConfig, run_dir: str | Path, runtime: Runtime | None = None) -> dict:
    """Train ``task``'s model as ``cfg.trainer`` says; rank 0 writes checkpoints and ``metrics.jsonl`` in
    ``run_dir``. ``runtime`` says which rank this is; without it, :func:`nlpseq.runtime.start` sets this process
    up from ``cfg.device``, ``trainer.num_threads`` and the launcher's environment (one process without).

    Returns ``{"best_checkpoint", "best_score", "metric", "best_epoch", "epochs", "steps", "elapsed_s"}``.
    """
    flush_denormals()
    return Trainer(task, cfg, run_dir, runtime or start(cfg.device, cfg.trainer.num_threads)).fit()
