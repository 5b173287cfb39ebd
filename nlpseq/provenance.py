"""Where a number came from: the commit, the CPU and the command of each training, kept in the run directory.

``train.py`` appends one record per invocation (a resumed run has several) to ``RUN/run.json``; ``evaluate.py``
writes the scores of a split to ``RUN/scores/<split>.json``. ``scripts/summarize.py`` reads both to print the
README's table rows, so a table row never depends on someone copying numbers out of a log.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

PACKAGE_DIR = Path(__file__).resolve().parent


def git_commit(directory: Path = PACKAGE_DIR) -> str | None:
    """The short commit of the checkout ``directory`` is in, with ``+changes`` when tracked files differ from it;
    None outside a git checkout (an installed wheel: the version says it then)."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "--short", "HEAD")
    if commit is None:
        return None
    changed = git("status", "--porcelain", "--untracked-files=no")
    return commit + ("+changes" if changed else "")


def cpu_model() -> str:
    """The CPU's model name as ``lscpu`` shows it (``/proc/cpuinfo``), else what the platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` atomically (a kill leaves the old file or the new one, never half of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    """``path``'s JSON object, or None when the file is missing."""
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


_started: dict[Path, float] = {}  # run directory -> perf_counter() when this process's invocation started


def device_name(device: torch.device | None) -> str:
    """``cpu``, or the accelerator's model name (``NVIDIA H200``) for a CUDA device: wall times are compared
    only between runs on the same kind of machine."""
    if device is not None and device.type == "cuda":
        import torch  # only here: summarize.py reads run.json without loading torch

        return torch.cuda.get_device_name(device)
    return "cpu" if device is None else device.type


def start_record(run_dir: str | Path, overrides: list[str], threads: int | str | None,
                 device: torch.device | None = None, processes: int = 1) -> dict:
    """Append this invocation (commit, CPU, cores, threads, the device it trains on and how many processes,
    its command-line overrides, start time) to ``RUN/run.json``; :func:`record_progress` keeps its wall time
    current."""
    from nlpseq import __version__

    path = Path(run_dir) / "run.json"
    runs = (read_json(path) or {}).get("runs", [])
    record = {"commit": git_commit(), "version": __version__, "cpu": cpu_model(), "cores": os.cpu_count(),
              "device": device_name(device), "processes": processes, "threads": threads,
              "overrides": list(overrides), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "wall_s": 0.0, "finished": False}
    write_json(path, {"runs": [*runs, record]})
    _started[Path(run_dir).resolve()] = time.perf_counter()
    return record


def record_progress(run_dir: str | Path, finished: bool = False) -> None:
    """Set the wall time of this process's invocation in ``RUN/run.json`` (at each checkpoint, and at the end
    with ``finished``): a killed invocation keeps the time up to its last checkpoint, the work a resume keeps.
    A no-op where :func:`start_record` was not called (the trainer driven from Python)."""
    started = _started.get(Path(run_dir).resolve())
    data = read_json(Path(run_dir) / "run.json") if started is not None else None
    if data and data.get("runs"):
        data["runs"][-1].update(wall_s=round(time.perf_counter() - started, 1), finished=finished)
        write_json(Path(run_dir) / "run.json", data)
