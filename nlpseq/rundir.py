"""A run directory belongs to one training at a time.

The owner holds an exclusive ``fcntl.flock`` on ``DIR/.lock`` for as long as it runs; the operating system
releases it when the process ends, however it ends (a kill, a crash), so a stale lock never blocks the next run.
A second training on the same directory stops at once and names the process that owns it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
from pathlib import Path

from nlpseq.errors import NlpseqError

log = logging.getLogger(__name__)

_held: dict[Path, int] = {}  # resolved run directory -> the file descriptor that holds its lock


def lock_run_dir(run_dir: str | Path) -> None:
    """Take ``run_dir`` for this process (a no-op when it already holds it); :class:`NlpseqError` naming the
    owner when another process holds it."""
    path = Path(run_dir).resolve()
    if path in _held:
        return
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
        os.close(fd)
        raise NlpseqError(f"run directory {path} is in use by another training ({owner}); wait for it to end, or "
                          f"give this run another hydra.run.dir") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode())
    _held[path] = fd


def unlock_run_dir(run_dir: str | Path) -> None:
    """Give ``run_dir`` back (the lock file stays; it is empty of meaning without the lock)."""
    fd = _held.pop(Path(run_dir).resolve(), None)
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def remove_partial_files(directory: Path) -> None:
    """Delete the temporary files of checkpoint writes that a kill interrupted (``*.tmp``)."""
    leftovers = sorted(directory.glob("*.tmp")) if directory.is_dir() else []
    for path in leftovers:
        path.unlink(missing_ok=True)
    if leftovers:
        log.info("removed %d unfinished checkpoint file(s) from %s", len(leftovers), directory)


def lock_named_run_dir(argv: list[str]) -> None:
    """Before Hydra starts: take the run directory named on the command line (``hydra.run.dir=DIR``), so that a
    refused second run does not even rewrite the owner's ``DIR/.hydra/`` (a sweep's directories are taken by
    the trainer, one per job). Only the process that will write there (rank 0, or a single process) takes it."""
    if os.environ.get("RANK", "0") != "0" or any(a in ("-m", "--multirun") for a in argv):
        return
    named = [a.split("=", 1)[1] for a in argv[1:] if a.startswith("hydra.run.dir=")]
    if named and "$" not in named[-1]:  # an interpolated name is only known once Hydra composes it
        lock_run_dir(named[-1])
