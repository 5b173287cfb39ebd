"""Experiment trackers: where the trainer reports each evaluation besides ``metrics.jsonl`` (``trainer.logger``).

``none`` (the default) reports nowhere else. ``tensorboard`` writes ``<run dir>/tensorboard/``: the scalars of every
``metrics.jsonl`` line (``train/loss``, ``train/grad_norm`` (before clipping), ``train/lr`` and ``dev/<score>``)
keyed by the global step, and the resolved config as text once. It needs the optional extra
``pip install nlpseq[tensorboard]``; ``torch.utils.tensorboard`` is imported only when it is asked for.

A resumed run opens the event files with ``purge_step`` at the step of ``last.pt``: TensorBoard hides what the
killed run wrote after that evaluation, and the evaluation itself is written again from ``metrics.jsonl``
(:func:`nlpseq.checkpoint._sync_metrics` made it end there), so the curves always equal ``metrics.jsonl``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from omegaconf import DictConfig, OmegaConf

from nlpseq.errors import ConfigError

INSTALL_HINT = "pip install nlpseq[tensorboard]"
# metrics.jsonl key -> tag; dev_<score> becomes dev/<score>, and keys that are not scores are left out
TAGS = {"train_loss": "train/loss", "grad_norm": "train/grad_norm", "lr": "train/lr"}


class Logger(Protocol):
    """What the trainer calls: once per evaluation, and once at the end."""

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None: ...

    def log_text(self, tag: str, text: str, step: int = 0) -> None: ...

    def close(self) -> None: ...


class NoLogger:
    """``trainer.logger=none``: ``metrics.jsonl`` alone."""

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        pass

    def log_text(self, tag: str, text: str, step: int = 0) -> None:
        pass

    def close(self) -> None:
        pass


def summary_writer_class() -> type:
    """``torch.utils.tensorboard.SummaryWriter``; a one-line :class:`ConfigError` when the extra is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:  # torch raises ImportError itself when the tensorboard package is absent
        raise ConfigError(f"trainer.logger=tensorboard needs the tensorboard package ({e}); "
                          f"install it with: {INSTALL_HINT}") from None
    return SummaryWriter


class TensorBoardLogger:
    """Event files in ``directory``, flushed at every call so that a kill loses nothing already in metrics.jsonl."""

    def __init__(self, directory: Path, purge_step: int | None = None):
        self.writer = summary_writer_class()(log_dir=str(directory), purge_step=purge_step)

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def log_text(self, tag: str, text: str, step: int = 0) -> None:
        self.writer.add_text(tag, text, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


# trainer.logger -> builder(run directory, step resumed from (0: a fresh run))
LOGGERS: dict[str, Callable[[Path, int], Logger]] = {
    "none": lambda run_dir, step: NoLogger(),
    "tensorboard": lambda run_dir, step: TensorBoardLogger(run_dir / "tensorboard", purge_step=step or None),
}


def check_available(name: str) -> None:
    """At start-up, before any data is read: a :class:`ConfigError` when ``name``'s package is not installed."""
    if name == "tensorboard":
        summary_writer_class()


def scalars(record: Mapping) -> dict[str, float]:
    """The tagged numbers of a ``metrics.jsonl`` line."""
    tags = {key: TAGS.get(key) or (f"dev/{key[4:]}" if key.startswith("dev_") else None) for key in record}
    return {tag: float(record[key]) for key, tag in tags.items()
            if tag and isinstance(record[key], int | float) and not isinstance(record[key], bool)}


def open_logger(name: str, run_dir: Path, cfg: DictConfig, step: int) -> Logger:
    """The ``trainer.logger`` of a run starting (``step`` 0: the config is written) or resuming at ``step``
    (the evaluation of ``last.pt`` is written again from ``metrics.jsonl``)."""
    if name not in LOGGERS:
        raise ConfigError(f"trainer.logger must be one of {', '.join(LOGGERS)}, got {name!r}")
    logger = LOGGERS[name](Path(run_dir), step)
    if name == "none":
        return logger
    if step == 0:
        logger.log_text("config", "```yaml\n" + OmegaConf.to_yaml(cfg, resolve=True) + "```")
    else:
        for record in _records(Path(run_dir) / "metrics.jsonl"):
            if record["step"] == step:
                logger.log_scalars(step, scalars(record))
    return logger


def _records(path: Path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.strip()]
