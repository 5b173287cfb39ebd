"""How many CPU threads torch should use, chosen by a quick measurement rather than by the core count.

On a machine whose cores are shared (another training, a test run), torch's default of one thread per core
collapses: a 64x512 GRU step took 39 ms with 2 threads against 2.5 ms with 1 while another process held a
core. Timing a few recurrent-sized matrix products with each candidate count takes ~0.1 s and avoids that.
"""

from __future__ import annotations

import logging
import os
import time

import torch

from nlpseq.errors import ConfigError

log = logging.getLogger(__name__)


def available_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _step_time(threads: int, repeats: int = 3, steps: int = 20) -> float:
    """Best-of-``repeats`` seconds for ``steps`` GRU-sized steps ``(64, 512) @ (512, 1536)`` with ``threads``."""
    torch.set_num_threads(threads)
    x, w = torch.randn(64, 512), torch.randn(512, 1536)
    best = float("inf")
    with torch.inference_mode():
        torch.tanh(x @ w)  # warm the thread pool
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(steps):
                torch.tanh(x @ w)
            best = min(best, time.perf_counter() - start)
    return best


def choose_threads(max_threads: int | None = None) -> int:
    """The thread count (1 .. cores) that runs a recurrent-sized workload fastest right now.

    More threads must be at least 10% faster to be picked: below that, one thread per process wastes less
    when anything else starts.
    """
    cores = min(available_cores(), max_threads or available_cores())
    candidates = sorted({1, cores} | ({cores // 2} if cores >= 4 else set()))
    times = {n: _step_time(n) for n in candidates}
    best = 1
    for n in candidates[1:]:
        if times[n] < 0.9 * times[best]:
            best = n
    log.info("torch threads: %d (timed %s)", best, ", ".join(f"{n}: {t * 1e3:.1f} ms" for n, t in times.items()))
    return best


def set_threads(setting: int | str | None, max_threads: int | None = None) -> int:
    """``trainer.num_threads`` / ``num_threads``: ``auto`` measures (:func:`choose_threads`, at most
    ``max_threads``: the cores per process when several share the machine), a number sets it, ``None`` leaves
    torch's setting. Returns the count in use."""
    if setting is None:
        return torch.get_num_threads()
    n = choose_threads(max_threads) if str(setting) == "auto" else int(setting)
    if n < 1:
        raise ConfigError(f"trainer.num_threads must be an integer >= 1 or 'auto', got {setting!r}")
    torch.set_num_threads(n)
    return n
