"""The few collectives the trainer needs, each a no-op for a single process (``torch.distributed`` underneath).

Every decision that ends or changes training (a non-finite loss, the time limit, early stopping) is taken
from values that all ranks share after one of these calls, so no rank ever waits for another that left.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist

from nlpseq.runtime import Runtime


def _reduce(values: list[float], runtime: Runtime, op=dist.ReduceOp.SUM) -> list[float]:
    if not runtime.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=runtime.device)
    dist.all_reduce(tensor, op=op)
    return tensor.tolist()


def mean_over_ranks(value: float, runtime: Runtime) -> float:
    """The mean of ``value`` over ranks: NaN or infinite everywhere when it is so on any rank."""
    return _reduce([value], runtime)[0] / runtime.world_size


def any_rank(flag: bool, runtime: Runtime) -> bool:
    """True on every rank when ``flag`` is true on at least one."""
    return _reduce([float(flag)], runtime, dist.ReduceOp.MAX)[0] > 0


def sum_over_ranks(stats: dict[str, float], runtime: Runtime) -> dict[str, float]:
    """``stats`` (same keys on every rank) summed over ranks, in float64: counts stay exact."""
    keys = sorted(stats)
    return dict(zip(keys, _reduce([float(stats[k]) for k in keys], runtime)))


def gather_objects(obj, runtime: Runtime) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` for a single process)."""
    if not runtime.distributed:
        return [obj]
    out = [None] * runtime.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, runtime: Runtime):
    """Rank 0's ``obj`` on every rank."""
    if not runtime.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextmanager
def rank_zero_first(runtime: Runtime) -> Iterator[None]:
    """Rank 0 runs the block first (downloads, sentencepiece training into the cache), then the others, which
    find its files: every rank ends with the same vocabularies."""
    if runtime.distributed and not runtime.is_main:
        dist.barrier()
    yield
    if runtime.distributed and runtime.is_main:
        dist.barrier()
