"""Checkpoints: one file with weights, resolved config, task state (vocabularies) and metrics.

Everything is plain data or tensors, so a checkpoint loads with ``torch.load(path, weights_only=True)``
and rebuilds the predictor with nothing else. Files are written atomically (temp file + rename).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from omegaconf import OmegaConf

from nlpseq.errors import NlpseqError
from nlpseq.quantize import quantize_dynamic

FORMAT_VERSION = 1


def save_atomic(payload: dict, path: str | Path) -> None:
    """Write ``payload`` to ``path`` so that a crash leaves either the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; a clear error if it is missing or not nlpseq's."""
    path = Path(path)
    if not path.is_file():
        raise NlpseqError(f"checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for a corrupt or foreign file
        raise NlpseqError(f"{path} is not a loadable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or "task" not in ckpt or "model" not in ckpt:
        raise NlpseqError(f"{path} is not an nlpseq checkpoint (no 'task' and 'model' entries)")
    return ckpt


def load(path: str | Path, device: str | torch.device = "cpu", task: str | None = None, quantize: bool = False):
    """Rebuild the task's predictor from a checkpoint file alone; ``task`` (e.g. ``"translation"``) refuses a
    checkpoint of another task with a clear error.

    ``quantize=True`` applies dynamic int8 quantization to the recurrent and linear layers
    (:func:`nlpseq.quantize.quantize_dynamic`): faster prediction with slightly different scores, on the CPU
    only (another ``device`` raises :class:`NlpseqError`).

    >>> tagger = nlpseq.load("runs/ner/checkpoints/best.pt")
    >>> tagger.predict(["EU rejects German call ."])
    """
    from nlpseq.tasks import TASKS

    if quantize and torch.device(device).type != "cpu":
        raise NlpseqError("quantize=true runs on the CPU only; use device=cpu")
    ckpt = load_checkpoint(path)
    if task is not None and ckpt["task"] != task:
        raise NlpseqError(f"{path} is a {ckpt['task']} model, not a {task} model")
    if ckpt["task"] not in TASKS:
        raise NlpseqError(f"{path} is a checkpoint of task {ckpt['task']!r}, unknown to this nlpseq version")
    cfg = OmegaConf.create(ckpt["config"])
    task = TASKS[ckpt["task"]].from_state(cfg, ckpt["task_state"])
    model = task.build_model()
    model.load_state_dict(ckpt["model"])
    return task.predictor(quantize_dynamic(model) if quantize else model.to(device))
