"""The written contract between a task, the trainer and the scripts.

A task is a small class in ``nlpseq/tasks/<name>.py`` listed in ``nlpseq.tasks.TASKS``. It implements
:class:`TrainingTask` for ``scripts/train.py`` (any number of processes) and returns a :class:`Predictor` for
``evaluate.py``, ``predict.py`` and ``nlpseq.load``. These are :class:`typing.Protocol` s: a task inherits
from nothing, it only has these attributes. A new task joins by adding its module, its entry in ``TASKS`` and
its config presets; neither the trainer nor the scripts change.

How the trainer drives a training task, per epoch and process (rank ``r`` of ``world``):

1. ``plan = batch_plan(task.train_lengths(), ...)`` (:func:`nlpseq.data.batching.batch_plan`): the same
   length-bucketed, shuffled list of example-index batches on every rank (seeded by ``(seed, epoch)``), and
   rank ``r`` keeps every ``world``-th example of every batch, so all ranks take the same number of steps;
2. for each batch: ``loss = objective(task.collate(indices, epoch))``, where ``objective = task.objective(model)``
   is an ``nn.Module`` (so ``DistributedDataParallel``, autocast and ``torch.compile`` can wrap it);
3. at each evaluation: ``stats = task.validation_stats(model, rank, world)`` on the rank's share of the dev set;
   the trainer sums ``stats`` over ranks and every rank computes the same ``task.scores(stats)``, so early
   stopping and learning-rate plateaus decide identically everywhere.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import nn

Statistics = dict[str, float]
"""Sums over examples that add up across processes: entity counts, correct/total, BLEU n-gram counts, ..."""


@runtime_checkable
class Batch(Protocol):
    """A collated batch: a dataclass of tensors (see :func:`nlpseq.data.batching.move_batch`)."""

    @property
    def num_tokens(self) -> int:
        """Tokens it trains on (target tokens for translation), for tokens/s."""
        ...


@runtime_checkable
class TrainingTask(Protocol):
    """What ``nlpseq.trainer.train`` needs of a task."""

    name: str  # the key in nlpseq.tasks.TASKS, stored in checkpoints
    metric: str  # the dev score that selects the best checkpoint and drives early stopping
    higher_is_better: bool  # False for losses, errors, perplexity

    def state(self) -> dict:
        """Plain data (lists, dicts, strings, bytes) that ``from_state`` rebuilds the task from: vocabularies,
        tokenizer models. Stored in checkpoints, loaded with ``weights_only=True``."""
        ...

    def build_model(self) -> nn.Module:
        """A fresh model (pretrained vectors loaded when configured)."""
        ...

    def train_lengths(self) -> list[int]:
        """One length (the bucketing key) per training example, in example-index order."""
        ...

    def collate(self, indices: list[int], epoch: int) -> Batch:
        """Training examples ``indices`` as one batch; ``epoch`` (0-based) feeds per-epoch schedules."""
        ...

    def objective(self, model: nn.Module) -> nn.Module:
        """A module around ``model`` whose ``forward(batch)`` returns the scalar training loss."""
        ...

    def validation_stats(self, model: nn.Module, rank: int = 0, world_size: int = 1) -> Statistics:
        """Sums over the dev examples ``rank::world_size`` (all of them in one process)."""
        ...

    def scores(self, stats: Statistics) -> dict[str, float]:
        """Dev scores (``metric`` among them) from statistics summed over all processes."""
        ...


@runtime_checkable
class Predictor(Protocol):
    """A trained model ready for use: what ``nlpseq.load(path)`` returns and the scripts drive.

    ``options`` names the extra settings of ``evaluate.py`` / ``predict.py`` this task understands (e.g.
    ``beam``); the scripts pass the given ones as keyword arguments and refuse them for other tasks.
    """

    task: Any
    model: nn.Module
    prediction_options: tuple[str, ...]
    evaluation_options: tuple[str, ...]
    reads_lines: bool  # predict.py's input is one text per line (so interactive=true works)
    text_header: str  # printed before the results by predict.py format=text ("" for none)

    def read_inputs(self, path: str) -> Any:
        """``predict.py input=PATH`` (``-``: standard input) as what :meth:`predict` takes: the lines of text, or
        for a forecaster one history table."""
        ...

    def predict(self, texts: list[str], **options) -> list[dict]:
        """One JSON-serialisable dict per input text (a forecaster: per forecast step of one history)."""
        ...

    def format_text(self, result: dict) -> str:
        """One result as ``predict.py format=text`` prints it (newline-terminated)."""
        ...

    def read_examples(self, split: str | None, file: str | None, data_root: str | None, **options) -> list:
        """Gold examples: a named split of the training corpus (under ``data_root`` when given) or a file."""
        ...

    def score(self, examples: list, output: str | None, **options) -> tuple[dict, str]:
        """Score ``examples``; with ``output``, also write the predictions there. Returns the scores (the task's
        metrics by name; evaluate.py stores their numbers in the run directory) and the printed report."""
        ...

    def report(self, examples: list, output: str | None, **options) -> str:
        """The printed report of :meth:`score` alone."""
        ...


def check_task(task: object) -> None:
    """Fail early, naming what is missing, when ``task`` does not implement :class:`TrainingTask`."""
    missing = [name for name in ("name", "metric", "higher_is_better", "state", "build_model", "train_lengths",
                                 "collate", "objective", "validation_stats", "scores") if not hasattr(task, name)]
    if missing:
        raise TypeError(f"{type(task).__name__} does not implement the training contract: no {', '.join(missing)}")

