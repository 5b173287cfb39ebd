"""Checkpoints: one file with weights, resolved config, task state (vocabularies) and train state.

Everything is plain data or tensors, so a checkpoint loads with ``torch.load(path, weights_only=True)``
and rebuilds the predictor with nothing else. Files are written atomically (temp file + rename) by rank 0.

Format versions: 1 (before the task contract) lacks ``model.architecture`` and ``data.kind`` in its config;
:func:`migrate` adds them, so every checkpoint ever written loads.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from omegaconf import OmegaConf

from nlpseq.distributed import gather_objects
from nlpseq.errors import NlpseqError
from nlpseq.quantize import quantize_dynamic

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
ARCHITECTURES = {"ner": ("tagger", "tagged"), "sentiment": ("classifier", "labeled"),
                 "translation": ("seq2seq", "parallel")}  # what a version-1 checkpoint of each task used


def save_atomic(payload: dict, path: str | Path) -> None:
    """Write ``payload`` to ``path`` so that a crash leaves either the old file or the new one, never half.

    The data reach the disk (``fsync``) before the temporary file replaces ``path``, and the directory entry
    after; the file gets the permissions the user's umask gives new files. A full disk is one clear error.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        _fsync_directory(path.parent)
    except (OSError, RuntimeError) as e:
        if _disk_full(e):
            raise NlpseqError(f"no space left on {path.parent} while writing {path.name}; the previous checkpoints "
                              "are intact") from None
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _disk_full(error: BaseException | None) -> bool:
    """Whether ``error`` (or what caused it: torch wraps the OS error of a failed write) is a full disk."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def migrate(ckpt: dict) -> dict:
    """Bring a checkpoint of an older format up to :data:`FORMAT_VERSION` (in place; returns it)."""
    version = int(ckpt.get("format_version", 1))
    if version > FORMAT_VERSION:
        raise NlpseqError(f"checkpoint format {version} is newer than this nlpseq ({FORMAT_VERSION}): upgrade nlpseq")
    if version < 2 and ckpt.get("task") in ARCHITECTURES:
        architecture, kind = ARCHITECTURES[ckpt["task"]]
        ckpt["config"].setdefault("model", {}).setdefault("architecture", architecture)
        ckpt["config"].setdefault("data", {}).setdefault("kind", kind)
    ckpt["format_version"] = FORMAT_VERSION
    return ckpt


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; a clear error if it is missing or not nlpseq's."""
    path = Path(path)
    if not path.is_file():
        raise NlpseqError(f"checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for a corrupt or foreign file
        raise NlpseqError(f"{path} is not a loadable checkpoint: {_load_failure(e)}") from None
    if not isinstance(ckpt, dict) or "task" not in ckpt or "model" not in ckpt:
        raise NlpseqError(f"{path} is not an nlpseq checkpoint (no 'task' and 'model' entries)")
    return migrate(ckpt)


def _load_failure(error: Exception) -> str:
    """One line on why ``torch.load(weights_only=True)`` failed, without torch's advice to retry with
    ``weights_only=False`` (which would run whatever code the file carries)."""
    text = str(error).strip()
    if text.startswith("Weights only load failed"):
        return ("it holds Python objects besides tensors and plain data; nlpseq never runs code from a checkpoint "
                "(it loads with weights_only=True)")
    first = text.splitlines()[0] if text else type(error).__name__
    return first.rstrip(".") + " (a truncated, corrupt or non-PyTorch file)"


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


class TrainingCheckpoint:
    """``checkpoints/best.pt`` and ``checkpoints/last.pt`` of a run directory, for the trainer.

    ``last.pt`` holds everything an exact resume needs: optimizer, scheduler, weight average, loss scaler and
    the random generator states of every rank (resuming with the same number of processes is exact).
    """

    def __init__(self, run_dir: Path, task, cfg, model, optimizer, scheduler, average, precision, runtime):
        self.run_dir, self.directory = run_dir, run_dir / "checkpoints"
        self.best_path, self.last_path = self.directory / "best.pt", self.directory / "last.pt"
        self.task, self.cfg, self.model, self.optimizer = task, cfg, model, optimizer
        self.scheduler, self.average, self.precision, self.runtime = scheduler, average, precision, runtime
        if runtime.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)

    def _payload(self, state) -> dict:
        return {"format_version": FORMAT_VERSION, "task": self.task.name,
                "config": OmegaConf.to_container(self.cfg, resolve=True), "task_state": self.task.state(),
                "model": self.model.state_dict(), "train_state": asdict(state)}

    def save_best(self, state) -> None:
        if self.runtime.is_main:
            save_atomic(self._payload(state), self.best_path)

    def save_last(self, state, record: dict) -> None:
        """Called on every rank: the random states are gathered from all of them. ``record`` is the
        evaluation's ``metrics.jsonl`` line, kept so that a resume can write it if a kill came before it."""
        rng = gather_objects(torch.get_rng_state(), self.runtime)
        cuda = gather_objects(torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None, self.runtime)
        if not self.runtime.is_main:
            return
        payload = self._payload(state)
        payload.update(optimizer=self.optimizer.state_dict(), rng=rng[0], rng_per_rank=rng,
                       scheduler=self.scheduler.state_dict() if self.scheduler is not None else None,
                       average=self.average.state_dict() if self.average is not None else None,
                       scaler=self.precision.state_dict(), world_size=self.runtime.world_size, metrics=record)
        if cuda[0] is not None:
            payload.update(cuda_rng=cuda[0], cuda_rng_per_rank=cuda)
        save_atomic(payload, self.last_path)

    def restore(self) -> dict:
        """Load ``last.pt`` into the model and training objects; returns the saved train state. Rank 0 makes
        ``metrics.jsonl`` end at the same evaluation (see :func:`_sync_metrics`)."""
        ckpt = load_checkpoint(self.last_path, map_location=self.runtime.device)
        fresh = "start a new run with trainer.resume=false or another hydra.run.dir"
        if ckpt["task"] != self.task.name:
            raise NlpseqError(f"{self.last_path} is a checkpoint of task {ckpt['task']}, not {self.task.name}: "
                              f"this run directory belongs to another training; {fresh}")
        try:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise NlpseqError(f"{self.last_path} holds a model of another shape or setting than this configuration "
                              f"({reason}); {fresh}") from None
        if self.scheduler is not None and ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.average is not None and ckpt.get("average") is not None:
            self.average.load_state_dict(ckpt["average"])
        self.precision.load_state_dict(ckpt.get("scaler"))
        self._restore_random_states(ckpt)
        if self.runtime.is_main:
            _sync_metrics(self.run_dir / "metrics.jsonl", int(ckpt["train_state"]["step"]), ckpt.get("metrics"))
        return ckpt["train_state"]

    def _restore_random_states(self, ckpt: dict) -> None:
        rank, states = self.runtime.rank, ckpt.get("rng_per_rank") or [ckpt["rng"]]
        if len(states) != self.runtime.world_size:
            log.warning("%s was written by %d processes, this run has %d: resuming, but not exactly", self.last_path,
                        len(states), self.runtime.world_size)
        torch.set_rng_state(states[rank % len(states)].cpu())
        cuda_states = ckpt.get("cuda_rng_per_rank") or ([ckpt["cuda_rng"]] if "cuda_rng" in ckpt else None)
        if cuda_states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states[rank % len(cuda_states)]])


def _sync_metrics(path: Path, step: int, record: dict | None) -> None:
    """Make ``metrics.jsonl`` end with the evaluation of the checkpoint we resume from: drop the lines written
    after it, and write its own line when a kill came between the checkpoint and the line."""
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()] if path.exists() else []
    kept = [ln for ln in lines if json.loads(ln)["step"] <= step]
    if record is not None and (not kept or json.loads(kept[-1])["step"] < record["step"]):
        kept.append(json.dumps(record))
    if kept != lines:
        path.write_text("".join(ln + "\n" for ln in kept), encoding="utf-8")
