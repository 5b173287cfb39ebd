"""One trainer for every task: the loop, evaluation, early stopping, checkpoints and exact resume."""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from nlpseq.averaging import WeightAverage
from nlpseq.checkpoint import FORMAT_VERSION, load_checkpoint, save_atomic
from nlpseq.errors import TrainingDiverged
from nlpseq.optim import build_optimizer, build_scheduler, clip_gradients
from nlpseq.threads import set_threads

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    epoch: int = 0  # epochs started before the current one
    step: int = 0  # optimizer steps taken
    batch_in_epoch: int = 0  # batches of the current epoch already trained on
    best_score: float | None = None
    best_epoch: int = 0
    best_step: int = 0
    bad_evals: int = 0
    last_eval_step: int = -1
    elapsed: float = 0.0  # training seconds, summed over resumed runs


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def flush_denormals() -> None:
    """Make the CPU treat denormal floats as zero, in this thread and in the worker threads started after it.

    Adam's first moments of embedding rows unseen for a few hundred steps decay into denormals, which the CPU
    processes ~10x slower: SST-2 epochs slowed from 25k to 14k tokens/s after epoch 3. Flushing them changes no
    weight (those updates are far below a float32 weight's resolution). The setting is per thread and new
    threads inherit it, so call this before torch starts its thread pool (the scripts do it first thing).
    """
    torch.set_flush_denormal(True)


def train_step(task, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch, clip: float = math.inf,
               average: WeightAverage | None = None) -> tuple[float, float]:
    """One optimizer step on ``batch``: loss, backward, gradient clipping, update, weight average.

    Returns ``(loss, gradient norm before clipping)``. A non-finite loss raises :class:`TrainingDiverged`
    before the weights are touched. ``scripts/benchmark.py`` times exactly this function.
    """
    loss = task.loss(model, batch)
    loss_value = loss.item()
    if not math.isfinite(loss_value):
        raise TrainingDiverged(f"loss is {loss_value}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = clip_gradients([p for p in model.parameters() if p.grad is not None], clip)
    if average is not None:
        average.before_step()
    optimizer.step()
    if average is not None:
        average.update()
    return loss_value, grad_norm


def train(task, cfg: DictConfig, run_dir: str | Path) -> dict:
    """Train ``task``'s model as ``cfg.trainer`` says; write checkpoints and ``metrics.jsonl`` in ``run_dir``.

    Returns ``{"best_checkpoint", "best_score", "metric", "epochs", "steps"}``.
    """
    tc = cfg.trainer
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = run_dir / "checkpoints"
    best_path, last_path = ckpt_dir / "best.pt", ckpt_dir / "last.pt"
    flush_denormals()
    set_threads(tc.num_threads)
    torch.manual_seed(int(cfg.seed))
    device = pick_device(cfg.device)
    model = task.build_model().to(device)
    optimizer = build_optimizer(model, tc, device, pretrained=bool(cfg.model.get("pretrained_vectors")))
    steps_per_epoch = len(task.train_batches(0)) if tc.scheduler == "linear" else 0
    total = tc.max_steps or tc.max_epochs * steps_per_epoch
    scheduler, when = build_scheduler(optimizer, tc, total)
    average = WeightAverage(model, tc.ema_decay) if tc.ema_decay else None
    state = TrainState()
    higher = task.metric != "loss"
    if tc.resume and last_path.exists():
        state = _restore(last_path, model, optimizer, scheduler, average, device)
        _truncate_metrics(run_dir / "metrics.jsonl", state.step)
        log.info("resumed from %s at epoch %d, step %d", last_path, state.epoch + 1, state.step)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("model: %s parameters on %s\n%s", f"{n_params:,}", device, model)

    def snapshot(with_optimizer: bool) -> dict:
        payload = {"format_version": FORMAT_VERSION, "task": task.name,
                   "config": OmegaConf.to_container(cfg, resolve=True), "task_state": task.state(),
                   "model": model.state_dict(), "train_state": asdict(state)}
        if with_optimizer:
            payload.update(optimizer=optimizer.state_dict(), rng=torch.get_rng_state(),
                           scheduler=scheduler.state_dict() if scheduler is not None else None,
                           average=average.state_dict() if average is not None else None)
            if torch.cuda.is_available():
                payload["cuda_rng"] = torch.cuda.get_rng_state_all()
        return payload

    metrics_file = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")
    window = {"loss": 0.0, "grad_norm": 0.0, "batches": 0}  # averaged over the steps since the last evaluation

    def evaluate(epoch: int) -> bool:
        """Score on dev, log, checkpoint; returns True when early stopping says stop."""
        with average.applied() if average is not None else nullcontext():  # the best checkpoint is averaged
            scores = task.validate(model)
            score = float(scores[task.metric])
            improved = state.best_score is None or (score > state.best_score if higher else score < state.best_score)
            if improved:
                state.best_score, state.best_epoch, state.best_step, state.bad_evals = score, epoch, state.step, 0
                save_atomic(snapshot(with_optimizer=False), best_path)
            else:
                state.bad_evals += 1
        state.last_eval_step = state.step
        if scheduler is not None and when == "eval":
            scheduler.step(score if higher else -score)
        n = max(window["batches"], 1)
        record = {"epoch": epoch, "step": state.step, "train_loss": window["loss"] / n,
                  "grad_norm": window["grad_norm"] / n, "lr": optimizer.param_groups[0]["lr"],
                  **{f"dev_{k}": v for k, v in scores.items()},
                  "best": improved, "elapsed_s": round(state.elapsed, 1)}
        save_atomic(snapshot(with_optimizer=True), last_path)
        metrics_file.write(json.dumps(record) + "\n")
        metrics_file.flush()
        log.info("epoch %d step %d: train loss %.4f, dev %s %.2f%s", epoch, state.step,
                 record["train_loss"], task.metric, score, " (best)" if improved else "")
        window.update(loss=0.0, grad_norm=0.0, batches=0)
        return bool(tc.patience) and state.bad_evals >= tc.patience

    model.train()
    stop = state.step >= (tc.max_steps or math.inf) or bool(tc.patience and state.bad_evals >= tc.patience)
    clip = float(tc.clip_norm) if tc.clip_norm else math.inf
    while not stop and state.epoch < tc.max_epochs:
        batches = task.train_batches(state.epoch)
        bar = tqdm(batches, desc=f"epoch {state.epoch + 1}", initial=state.batch_in_epoch, leave=False,
                   disable=not tc.progress_bar, dynamic_ncols=True)
        bar_start, bar_tokens = time.perf_counter(), 0
        for i, batch in enumerate(batches):
            if i < state.batch_in_epoch:
                continue  # resumed mid-epoch: these batches were trained on before the kill
            t0 = time.perf_counter()
            try:
                loss_value, grad_norm = train_step(task, model, optimizer, batch.to(device), clip, average)
            except TrainingDiverged as e:
                raise TrainingDiverged(
                    f"{e} at epoch {state.epoch + 1}, step {state.step + 1}; stopped. The last good checkpoint "
                    f"is kept in {ckpt_dir}. Try a lower trainer.lr or trainer.clip_norm.") from None
            if scheduler is not None and when == "step":
                scheduler.step()
            state.step += 1
            state.batch_in_epoch = i + 1
            state.elapsed += time.perf_counter() - t0
            window["loss"] += loss_value
            window["grad_norm"] += grad_norm if math.isfinite(grad_norm) else 0.0
            window["batches"] += 1
            bar_tokens += batch.num_tokens
            bar.update(1)
            if bar.n % 10 == 0:
                rate = bar_tokens / max(time.perf_counter() - bar_start, 1e-9)
                bar.set_postfix(loss=f"{loss_value:.3f}", gnorm=f"{grad_norm:.2f}", tok_s=f"{rate:,.0f}")
            if tc.max_steps and state.step >= tc.max_steps:
                stop = True
            elif tc.max_minutes and state.elapsed > 60 * tc.max_minutes:
                log.info("stopping: trainer.max_minutes=%s reached", tc.max_minutes)
                stop = True
            elif tc.eval_every_steps and state.step % tc.eval_every_steps == 0:
                stop = evaluate(state.epoch + 1)
            if stop:
                break
        bar.close()
        finished = state.batch_in_epoch >= len(batches)
        if finished:
            log.info("epoch %d: %.0f tokens/s", state.epoch + 1,
                     bar_tokens / max(time.perf_counter() - bar_start, 1e-9))
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
            if scheduler is not None and when == "epoch":
                scheduler.step()
        if (finished and not tc.eval_every_steps) or (stop and state.last_eval_step != state.step):
            stop = evaluate(state.epoch if finished else state.epoch + 1) or stop
    metrics_file.close()
    return {"best_checkpoint": str(best_path), "best_score": state.best_score, "metric": task.metric,
            "best_epoch": state.best_epoch, "epochs": state.epoch, "steps": state.step, "elapsed_s": state.elapsed}


def _restore(path: Path, model, optimizer, scheduler, average, device) -> TrainState:
    ckpt = load_checkpoint(path, map_location=device)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None and ckpt.get("scheduler") is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    if average is not None and ckpt.get("average") is not None:
        average.load_state_dict(ckpt["average"])
    torch.set_rng_state(ckpt["rng"].cpu())
    if "cuda_rng" in ckpt and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in ckpt["cuda_rng"]])
    return TrainState(**ckpt["train_state"])


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines written after the checkpoint we resume from, so none appears twice."""
    if path.exists():
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        path.write_text("".join(ln + "\n" for ln in lines if json.loads(ln)["step"] <= step), encoding="utf-8")
