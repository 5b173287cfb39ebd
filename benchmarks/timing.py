"""Timing helpers: alternating windows, per-call latency percentiles, peak resident memory."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from pathlib import Path


def rate(fn: Callable[[], int], seconds: float) -> float:
    """Call ``fn`` (which returns the units it processed) until ``seconds`` have passed; units per second."""
    units, start = 0, time.perf_counter()
    while True:
        units += fn()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return units / elapsed


def alternate(a: Callable[[], int], b: Callable[[], int], windows: int, seconds: float) -> tuple[float, float]:
    """Median rates of ``a`` and ``b`` over ``windows`` timed windows each, run A B A B ... so drift cancels."""
    rates_a, rates_b = [], []
    for _ in range(windows):
        rates_a.append(rate(a, seconds))
        rates_b.append(rate(b, seconds))
    return statistics.median(rates_a), statistics.median(rates_b)


def alternate_steps(a: Callable[[], int], b: Callable[[], int], windows: int, steps: int) -> tuple[float, float]:
    """Like :func:`alternate` but each window is ``steps`` calls: when ``a`` and ``b`` walk through the same
    batches in the same order, every window of A and the following window of B see identical work."""
    rates_a, rates_b = [], []
    for _ in range(windows):
        for fn, rates in ((a, rates_a), (b, rates_b)):
            start = time.perf_counter()
            units = sum(fn() for _ in range(steps))
            rates.append(units / (time.perf_counter() - start))
    return statistics.median(rates_a), statistics.median(rates_b)


def latencies(a: Callable[[object], object], b: Callable[[object], object], items: list
              ) -> tuple[list[float], list[float]]:
    """Milliseconds of ``a(item)`` and ``b(item)`` for every item, interleaved item by item; the order
    alternates (A B, B A, ...) so neither side always runs right after the other warmed shared caches."""
    times_a, times_b = [], []
    for i, item in enumerate(items):
        pairs = ((a, times_a), (b, times_b))
        for fn, out in pairs if i % 2 == 0 else pairs[::-1]:
            start = time.perf_counter()
            fn(item)
            out.append((time.perf_counter() - start) * 1e3)
    return times_a, times_b


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear interpolation between order statistics."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_memory_mib(fn: Callable[[], object]) -> float | None:
    """Peak resident memory above the level at the start while ``fn`` runs, in MiB (Linux; None elsewhere).

    The kernel's high-water mark is reset first (``/proc/self/clear_refs``), so earlier work does not count.
    """
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    before = _status_kib("VmRSS")
    fn()
    peak = _status_kib("VmHWM")
    if before is None or peak is None:
        return None
    return (peak - before) / 1024
