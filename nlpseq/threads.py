"""How many CPU threads torch should use, chosen by measurement rather than by the core count.

On a machine whose cores are shared (another training, a test run), torch's default of one thread per core
collapses: a 64x512 GRU step took 39 ms with 2 threads against 2.5 ms with 1 while another process held a
core. Timing a few recurrent-sized matrix products with each candidate count takes ~0.1 s and avoids that at
start-up (:func:`choose_threads`). A machine's sharing changes while a training runs, though (a job starts on
the other core an hour in), so the trainer also re-decides as it goes (:class:`ThreadGovernor`): every
``interval`` seconds of training it times its own steps with the current count and then with the other, back to
back, and keeps the faster.
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


def choose_threads(max_threads: int | None = None, level: int = logging.INFO) -> int:
    """The thread count (1 .. cores) that runs a recurrent-sized workload fastest right now.

    More threads must be at least 10% faster to be picked: below that, one thread per process wastes less
    when anything else starts.
    """
    cores = min(available_cores(), max_threads or available_cores())
    candidates = sorted({1, cores} | ({cores // 2} if cores >= 4 else set()))
    times = {n: _step_time(n) for n in candidates}
    best = fastest({n: 1 / t for n, t in times.items()}, keep=1, margin=0.9)
    log.log(level, "torch threads: %d (timed %s)", best, ", ".join(f"{n}: {t * 1e3:.1f} ms" for n, t in times.items()))
    return best


def fastest(rates: dict[int, float], keep: int, margin: float) -> int:
    """The thread count to use given ``rates`` (work per second per count): ``keep`` unless another count is
    faster by more than ``1 / margin``; then the fastest. The margin keeps timing noise from flipping counts."""
    best = max(rates, key=rates.get)
    return best if rates[best] * margin > rates[keep] else keep


class ThreadGovernor:
    """Re-decides torch's thread count during training from the speed of the training steps themselves.

    The trainer reports each step's work (tokens) and seconds to :meth:`step_done`. After ``interval`` seconds
    of steps at the current count, it measures ``probe`` seconds more at the current count and ``probe``
    seconds at each other candidate (the first step after a switch is not counted: thread pools warm up),
    then switches when another count is more than 5% faster (:func:`fastest`). Both sides of a comparison are
    timed back to back, so a load that comes and goes between probes does not bias it. A probe that confirms
    the count doubles the interval (up to ``max_interval``): a steady machine is probed rarely, so probing
    costs under 1%; a switch brings it back to ``interval``. Between probes, a speed that falls below ``drop``
    times the one last measured (over windows of ``2 * probe`` seconds) probes at once: a job starting on the
    other core costs seconds, not minutes. ``set_count`` is ``torch.set_num_threads`` (tests pass a recorder).
    """

    def __init__(self, candidates: list[int], current: int, interval: float = 10.0, max_interval: float = 120.0,
                 probe: float = 1.0, margin: float = 0.95, drop: float = 0.75, set_count=None):
        self.candidates = sorted(set(candidates) | {current})
        self.current, self.probe, self.margin, self.drop = current, probe, margin, drop
        self.min_interval, self.max_interval, self.interval = interval, max_interval, interval
        self.set_count = set_count or torch.set_num_threads
        self.since_decision = 0.0  # seconds of steps since the last decision
        self.queue: list[int] = []  # counts still to time in this probe (the current one first)
        self.timed: dict[int, list[float]] = {}  # count -> [work, seconds] in this probe
        self.skip = False  # the next step is the first after a switch: not timed
        self.switches = 0
        self.reference: float | None = None  # work/s of the current count at the last probe
        self.recent = [0.0, 0.0]  # [work, seconds] of the steps since the last window started

    @property
    def active(self) -> bool:
        return len(self.candidates) > 1

    def step_done(self, work: float, seconds: float) -> None:
        """Account one training step of ``work`` units (tokens) that took ``seconds`` at the current count."""
        if not self.active:
            return
        if not self.queue:
            self.since_decision += seconds
            if self.since_decision >= self.interval or self._slowed_down(work, seconds):
                self.queue = [self.current, *(n for n in self.candidates if n != self.current)]
                self.timed = {}
            return
        if self.skip:
            self.skip = False
            return
        measured = self.timed.setdefault(self.queue[0], [0.0, 0.0])
        measured[0] += work
        measured[1] += seconds
        if measured[1] >= self.probe:
            self.queue.pop(0)
            if self.queue:
                self.set_count(self.queue[0])
                self.skip = True
            else:
                self._decide()

    def _slowed_down(self, work: float, seconds: float) -> bool:
        """True when the last window's speed fell below ``drop`` times the reference (the machine got busier)."""
        self.recent[0] += work
        self.recent[1] += seconds
        if self.recent[1] < 2 * self.probe:
            return False
        rate, self.recent = self.recent[0] / self.recent[1], [0.0, 0.0]
        return self.reference is not None and rate < self.drop * self.reference

    def _decide(self) -> None:
        rates = {n: work / max(seconds, 1e-9) for n, (work, seconds) in self.timed.items()}
        best = fastest(rates, keep=self.current, margin=self.margin)
        if best != self.current:
            self.switches += 1
            self.interval = self.min_interval
            log.info("torch threads: %d -> %d (%s work/s)", self.current, best,
                     ", ".join(f"{n}: {r:,.0f}" for n, r in sorted(rates.items())))
        else:
            self.interval = min(2 * self.interval, self.max_interval)
        self.current, self.since_decision, self.reference, self.recent = best, 0.0, rates[best], [0.0, 0.0]
        self.set_count(best)


def thread_governor(setting: int | str | None, device: torch.device, local_processes: int = 1
                    ) -> ThreadGovernor | None:
    """The trainer's :class:`ThreadGovernor` for ``trainer.num_threads=auto`` on the CPU, choosing between 1
    thread and the cores per local process; None for a fixed count, a GPU, or one core per process."""
    cores = max(1, available_cores() // max(1, local_processes))
    if str(setting) != "auto" or device.type != "cpu" or cores == 1:
        return None
    return ThreadGovernor([1, cores], torch.get_num_threads())


def set_threads(setting: int | str | None, max_threads: int | None = None, key: str = "trainer.num_threads",
                level: int = logging.INFO) -> int:
    """``trainer.num_threads`` / ``num_threads`` (``key``, for errors): ``auto`` measures (:func:`choose_threads`,
    at most ``max_threads``: the cores per process when several share the machine; its choice logged at
    ``level``), a number sets it, ``None`` leaves torch's setting. Returns the count in use."""
    if setting is None:
        return torch.get_num_threads()
    try:
        n = choose_threads(max_threads, level) if str(setting) == "auto" else int(setting)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"{key} must be an integer >= 1 or 'auto', got {setting!r}")
    torch.set_num_threads(n)
    return n
