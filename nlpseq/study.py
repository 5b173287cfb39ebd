"""The memory study behind ``scripts/study.py``: train every cell on every long-memory problem and length, measure
the gradient reaching each time step before and after training, and show exploding gradients and clipping.

Each training is an ordinary ``task=memory`` run (the trainer, checkpoints and metrics of any task) in
``<study dir>/runs/<problem>_T<T>_<cell>_seed<seed>``; the study adds the measurements and the report
(:mod:`nlpseq.study_report`).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from nlpseq.data.memory import COPY_RECALL, chance
from nlpseq.errors import ConfigError, NlpseqError, TrainingDiverged
from nlpseq.gradient_flow import flow_ratio, state_gradient_norms
from nlpseq.optim import build_optimizer
from nlpseq.runtime import Runtime
from nlpseq.tasks.memory import MemoryTask, memory_loss
from nlpseq.trainer import train, train_step

log = logging.getLogger(__name__)

ComposeFn = Callable[[list[str]], DictConfig]  # training overrides -> the composed training config


@dataclass
class Result:
    """One training: its test score, the memoryless level, and ‖∂L/∂h_t‖ per step before and after."""

    problem: str
    length: int
    cell: str
    seed: int
    metric: str
    score: float
    chance: float
    flow_init: list[float]
    flow_trained: list[float]
    ratio_init: float
    ratio_trained: float
    steps: int
    seconds: float


PER_TASK_KEYS = ("steps", "lr", "eval_every")  # what ``study.per_task.<problem>`` may set


def training_settings(study: DictConfig, problem: str) -> dict:
    """``steps``, ``lr`` and ``eval_every`` of the trainings on ``problem``: the study's, with
    ``study.per_task.<problem>`` on top."""
    own = dict((study.get("per_task") or {}).get(problem) or {})
    unknown = sorted(set(own) - set(PER_TASK_KEYS))
    if unknown:
        raise ConfigError(f"study.per_task.{problem}.{unknown[0]}: unknown setting; expected one of "
                          + ", ".join(PER_TASK_KEYS))
    return {key: own.get(key, study[key]) for key in PER_TASK_KEYS}


def overrides(study: DictConfig, problem: str, length: int, cell: str, seed: int) -> list[str]:
    """The ``scripts/train.py`` overrides of one training of the study."""
    own = training_settings(study, problem)
    return ["task=memory", f"data={problem}", f"data.length={length}", f"data.train_size={study.train_size}",
            f"model.cell={cell}", f"model.hidden_size={study.hidden_size}", f"seed={seed}",
            f"trainer.max_steps={own['steps']}", f"trainer.lr={own['lr']}", f"trainer.clip_norm={study.clip}",
            "trainer.progress_bar=false", f"trainer.eval_every_steps={own['eval_every']}"]


def measure_flow(task: MemoryTask, model, count: int) -> torch.Tensor:
    """‖∂L/∂h_t‖ per step on the first ``count`` test examples, ``(steps,)``; for copy memory L is the loss of
    the recalled symbols, so the first steps get gradient only through time."""
    test = task.split("test")
    batch = task.batch(test, torch.arange(min(count, len(test))))
    # in float64: a plain RNN's gradient at the first of 100 steps is below float32's range (it would read 0)
    model = copy.deepcopy(model).double()
    device = next(model.parameters()).device

    def loss(outputs: torch.Tensor) -> torch.Tensor:
        outputs, targets = outputs.cpu(), batch.targets.double() if task.kind == "adding" else batch.targets
        if task.kind == "copy":  # the recall alone: the loss of emitting blanks would reach every step directly
            outputs, targets = outputs[:, -COPY_RECALL:], targets[:, -COPY_RECALL:]
        return memory_loss(task.kind, outputs, targets)

    return state_gradient_norms(model, batch.inputs.to(device, torch.float64), loss)[0]


def run_dir_of(root: Path, problem: str, length: int, cell: str, seed: int) -> Path:
    return root / "runs" / f"{problem}_T{length}_{cell}_seed{seed}"


def train_in_parallel(study: DictConfig, settings: list[tuple[str, int, str, int]], root: Path, jobs: int,
                      device: str) -> None:
    """Run the trainings of ``settings`` as ``scripts/train.py`` processes, ``jobs`` at a time with one thread
    each (small recurrent models gain little from a second thread; a second training gains a whole core). A
    finished run directory is resumed at its last step, so :func:`run_one` then only measures."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def launch(setting: tuple[str, int, str, int]) -> None:
        run_dir = run_dir_of(root, *setting)
        run_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "nlpseq.commands.train", *overrides(study, *setting), f"device={device}",
                   "trainer.num_threads=1", f"hydra.run.dir={run_dir}"]
        with open(run_dir / "train.out", "w", encoding="utf-8") as out:
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
        if done.returncode:
            raise NlpseqError(f"the training in {run_dir} failed (exit {done.returncode}); see {run_dir}/train.out")

    def work(setting: tuple[str, int, str, int]) -> int:
        return int(training_settings(study, setting[0])["steps"]) * setting[1]

    # the longest first: the last trainings to start are short ones, so no core idles long at the end
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(launch, sorted(settings, key=work, reverse=True)))


def run_one(study: DictConfig, compose: ComposeFn, problem: str, length: int, cell: str, seed: int, root: Path,
            runtime: Runtime) -> Result:
    """Train one cell on one problem (or reuse its finished run directory) and measure it."""
    cfg = compose(overrides(study, problem, length, cell, seed))
    task = MemoryTask.from_config(cfg)
    torch.manual_seed(int(cfg.seed))  # the trainer's initial weights: the same seed, the same construction
    flow_init = measure_flow(task, task.build_model().to(runtime.device), int(study.gradient_batch))
    run_dir = run_dir_of(root, problem, length, cell, seed)
    summary = train(task, cfg, run_dir, runtime)
    import nlpseq  # the trained model as a user gets it: from its best checkpoint alone

    model = nlpseq.load(summary["best_checkpoint"], device=runtime.device).model
    test = task.split("test")
    score = task.scores(task.statistics(model, test, torch.arange(len(test))))[task.metric]
    flow_trained = measure_flow(task, model, int(study.gradient_batch))
    # the copy task's metric is recall accuracy, at which a memoryless model guesses 1 symbol in 8
    level = 100.0 / 8 if problem == "copy" else chance(problem, length)[1]
    log.info("%s T=%d %s seed %d: test %s %.4f (memoryless %.4f); flow ratio %.3g at init, %.3g trained", problem,
             length, cell, seed, task.metric, score, level, flow_ratio(flow_init), flow_ratio(flow_trained))
    return Result(problem, length, cell, seed, task.metric, score, level, flow_init.tolist(), flow_trained.tolist(),
                  flow_ratio(flow_init), flow_ratio(flow_trained), summary["steps"], summary["elapsed_s"])


def clipping_demo(study: DictConfig, compose: ComposeFn, runtime: Runtime) -> dict[str, list[float]]:
    """Gradient norms (before clipping) per step of a plain RNN whose recurrent weights are scaled by
    ``study.explode_scale``, trained on the adding problem without clipping and with ``study.clip``.

    The optimizer is ``study.explode_optimizer`` (SGD): Adam divides each step by the gradient's running scale, so
    an exploding gradient moves its weights no further than a small one; SGD's step grows with it."""
    curves = {}
    for name, clip in (("no clipping", math.inf), (f"clipping at {study.clip}", float(study.clip))):
        cfg = compose(overrides(study, "adding", int(study.explode_length), "rnn", int(study.seeds[0]))
                      + [f"model.recurrent_scale={study.explode_scale}", f"trainer.optimizer={study.explode_optimizer}",
                         f"trainer.lr={study.explode_lr}"])
        task = MemoryTask.from_config(cfg)
        torch.manual_seed(int(cfg.seed))
        model = task.build_model().to(runtime.device)
        optimizer = build_optimizer(model, cfg.trainer, runtime.device)
        objective, norms, losses = task.objective(model), [], []
        generator = torch.Generator().manual_seed(int(cfg.seed))
        for _ in range(int(study.explode_steps)):
            rows = torch.randint(0, len(task.split("train")), (int(cfg.trainer.batch_size),), generator=generator)
            batch = task.batch(task.split("train"), rows)
            batch = type(batch)(batch.inputs.to(runtime.device), batch.targets.to(runtime.device))
            try:
                loss, norm = train_step(objective, optimizer, [batch], clip)
            except TrainingDiverged as e:  # a diverged run is part of the demonstration, not a failure
                log.info("%s: stopped after %d steps (%s)", name, len(norms), e)
                break
            norms.append(norm)
            losses.append(loss)
        curves[name] = norms
        curves[f"{name} loss"] = losses
    return curves


def result_rows(results: list[Result]) -> list[dict]:
    return [asdict(r) for r in results]
