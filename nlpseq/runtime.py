"""Where and how a process computes: its rank among the training processes, its device, threads, denormals.

``torchrun`` (or any launcher that sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` and
``MASTER_ADDR``/``MASTER_PORT``) makes :func:`start` join the process group: gloo on CPU, nccl on CUDA.
Without those variables the process trains alone and nothing distributed is touched.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist

from nlpseq.errors import ConfigError
from nlpseq.threads import available_cores, set_threads

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    """This process's place in the job; ``Runtime()`` is a single process on the CPU."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, metrics, logs and the progress bar."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def backend(self) -> str | None:
        return dist.get_backend() if self.distributed and dist.is_initialized() else None


def flush_denormals() -> None:
    """Make the CPU treat denormal floats as zero, in this thread and in the worker threads started after it.

    Adam's first moments of embedding rows unseen for a few hundred steps decay into denormals, which the CPU
    processes ~10x slower: SST-2 epochs slowed from 25k to 14k tokens/s after epoch 3. Flushing them changes no
    weight (those updates are far below a float32 weight's resolution). The setting is per thread and new
    threads inherit it, so call this before torch starts its thread pool (the scripts do it first thing).
    """
    torch.set_flush_denormal(True)


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: this process's GPU (``cuda:LOCAL_RANK``) when CUDA is present, else the CPU; ``cuda`` means
    the local rank's GPU; anything else (``cpu``, ``cuda:1``) is taken as given."""
    name = str(name)
    if name in ("auto", "cuda"):
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if name == "cuda":
            raise ConfigError("device=cuda but torch.cuda.is_available() is false on this machine; "
                              "use device=auto or device=cpu")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but torch.cuda.is_available() is false on this machine; "
                          "use device=auto or device=cpu")
    return torch.device(name)


def _one_gpu_per_process(chosen: torch.device, setting: str, local_processes: int) -> None:
    """NCCL refuses two ranks on one GPU (and fails deep inside the first collective); say it at start-up."""
    if chosen.type != "cuda" or local_processes == 1:
        return
    gpus = torch.cuda.device_count() if str(setting) in ("auto", "cuda") else 1
    if local_processes > gpus:
        raise ConfigError(f"torchrun started {local_processes} processes on this machine but device={setting} gives "
                          f"them {gpus} GPU(s), and NCCL needs one GPU per process: use --nproc_per_node={gpus}, "
                          "or device=cpu to train the processes on the CPU (gloo)")


def _environment() -> tuple[int, int, int, int]:
    """``(rank, world_size, local_rank, local_world_size)`` from the launcher's variables (1 process without)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    return rank, world, local_rank, int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))


def start(device: str = "auto", num_threads: int | str | None = "auto", timeout_minutes: float = 30.0) -> Runtime:
    """Set up this process for training: join the process group when launched by ``torchrun``, pick the
    device, and set the torch thread count (``auto``: timed, among 1 .. the cores per local process)."""
    rank, world, local_rank, local_world = _environment()
    chosen = pick_device(device, local_rank)
    _one_gpu_per_process(chosen, device, local_world)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if chosen.type == "cuda" else "gloo"
        if chosen.type == "cuda":
            torch.cuda.set_device(chosen)
        dist.init_process_group(backend, timeout=timedelta(minutes=timeout_minutes))
    threads = set_threads(num_threads, max(1, available_cores() // local_world))
    runtime = Runtime(rank, world, local_rank, local_world, chosen)
    if world > 1:
        log.info("rank %d of %d (local %d of %d) on %s, %s backend, %d threads", rank, world, local_rank,
                 local_world, chosen, runtime.backend, threads)
    return runtime


def stop(runtime: Runtime) -> None:
    """Leave the process group (a no-op for a single process)."""
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()


def hydra_overrides_for_rank(argv: list[str]) -> list[str]:
    """``argv`` for this process's Hydra: unchanged for rank 0 (and a single process); the other ranks write
    no run directory, config copy or log file of their own (their clocks may name another directory): rank 0's
    run directory is sent to them once the process group is up."""
    rank, world, _, _ = _environment()
    if world == 1 or rank == 0:
        return argv
    kept = [a for a in argv[1:] if not a.startswith(("hydra.run.dir=", "hydra.output_subdir=", "hydra/job_logging="))]
    return [argv[0], *kept, "hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=stdout"]
