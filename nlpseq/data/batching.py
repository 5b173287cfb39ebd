"""Length-bucketed batching and padding."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import torch


def bucket_batches(lengths: Sequence[int], batch_size: int, shuffle: bool,
                   generator: torch.Generator | None = None, bucket_factor: int = 50,
                   max_tokens: int | None = None) -> list[list[int]]:
    """Group example indices into batches of similar length.

    With ``shuffle`` the examples are shuffled, cut into pools of ``batch_size * bucket_factor``,
    each pool is sorted by length and cut into batches, and the batches are shuffled: padding stays
    small while batch composition still changes every epoch. Without ``shuffle`` examples are sorted
    by length (longest first) so evaluation pads as little as possible. The result depends only on
    ``lengths``, ``batch_size`` and the generator state, which makes resumed runs exact.

    ``max_tokens`` adds a token budget: a batch takes sentences while ``sentences * longest <= max_tokens``
    (padded size). In training it replaces ``batch_size``, so a batch of short sentences holds more of them;
    without ``shuffle`` (evaluation, prediction) ``batch_size`` stays a cap, and long sentences come in
    smaller batches: the padding of a wide batch of mixed lengths would cost more than the narrower matrices.
    """
    n = len(lengths)
    if not shuffle:
        order = sorted(range(n), key=lambda i: -lengths[i])
        if max_tokens:
            return [b[i:i + batch_size] for b in _cut_by_tokens(order, lengths, max_tokens)
                    for i in range(0, len(b), batch_size)]
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    order = torch.randperm(n, generator=generator).tolist()
    pool = batch_size * bucket_factor
    batches = []
    for start in range(0, n, pool):
        chunk = sorted(order[start:start + pool], key=lambda i: lengths[i])
        if max_tokens:
            batches.extend(_cut_by_tokens(chunk, lengths, max_tokens))
        else:
            batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    perm = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in perm]


def _cut_by_tokens(chunk: list[int], lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Consecutive runs of ``chunk`` (sorted by length) whose padded size stays within ``max_tokens``."""
    batches, current, longest = [], [], 0
    for i in chunk:
        widest = max(longest, lengths[i])
        if current and widest * (len(current) + 1) > max_tokens:
            batches.append(current)
            current, widest = [], lengths[i]
        current.append(i)
        longest = widest
    if current:
        batches.append(current)
    return batches


def pad_sequences(seqs: Sequence[Sequence[int]], pad: int = 0) -> torch.Tensor:
    """``seqs`` of ids -> ``(batch, max_len)`` long tensor, right-padded with ``pad``."""
    width = max((len(s) for s in seqs), default=0)
    return torch.tensor([list(s) + [pad] * (width - len(s)) for s in seqs], dtype=torch.long).view(len(seqs), width)


def pad_characters(words: Sequence[Sequence[Sequence[int]]], pad: int = 0) -> torch.Tensor:
    """Character ids per word per sentence -> ``(batch, max_words, max_chars)``, padded with ``pad``."""
    n_words = max((len(s) for s in words), default=0)
    n_chars = max(max((len(w) for s in words for w in s), default=1), 1)
    empty = [pad] * n_chars
    rows = [[list(w) + [pad] * (n_chars - len(w)) for w in s] + [empty] * (n_words - len(s)) for s in words]
    return torch.tensor(rows, dtype=torch.long).view(len(words), n_words, n_chars)


class CharBatch(NamedTuple):
    """The characters of a batch's distinct words, so a character encoder runs once per word type.

    ``ids`` ``(distinct words, max_chars)`` holds each distinct character sequence once; ``index``
    ``(batch, time)`` is the row of ``ids`` for every token (0 at padding, which the embedder masks).
    """

    ids: torch.Tensor
    index: torch.Tensor

    def to(self, device: torch.device, non_blocking: bool = False) -> CharBatch:
        return CharBatch(self.ids.to(device, non_blocking=non_blocking),
                         self.index.to(device, non_blocking=non_blocking))


def distinct_characters(words: Sequence[Sequence[Sequence[int]]], pad: int = 0) -> CharBatch:
    """Character ids per word per sentence -> :class:`CharBatch` (a sentence of CoNLL repeats ~30% of its
    words within a batch of 32: "the", ",", "." ...)."""
    rows: dict[tuple[int, ...], int] = {}
    index = [[rows.setdefault(tuple(w), len(rows)) for w in s] for s in words]
    ids = pad_sequences(list(rows) or [[pad]], pad)
    return CharBatch(ids, pad_sequences(index, 0))


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator that shuffles epoch ``epoch`` (0-based): the same on every rank and after a resume."""
    return torch.Generator().manual_seed(int(seed) * 1000 + int(epoch))


def batch_plan(lengths: Sequence[int], batch_size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1,
               max_tokens: int | None = None) -> list[list[int]]:
    """Rank ``rank``'s batches of example indices for ``epoch``.

    Every rank builds the same shuffled, length-bucketed list (:func:`bucket_batches` with
    :func:`epoch_generator`) and keeps every ``world_size``-th example of each batch, starting at ``rank``: a
    batch's examples are sorted by length, so the shares are balanced, and every rank takes one step per
    batch: ``trainer.batch_size`` stays the global batch whatever the process count. Batches with fewer
    examples than ranks (a pool's remainder) are left out when ``world_size > 1``. With one process this is
    exactly ``bucket_batches``.
    """
    batches = bucket_batches(lengths, batch_size, True, epoch_generator(seed, epoch), max_tokens=max_tokens)
    if world_size == 1:
        return batches
    return [b[rank::world_size] for b in batches if len(b) >= world_size]


def move_batch(batch, device: torch.device, pin_memory: bool = False):
    """A copy of the dataclass ``batch`` with its tensors (and :class:`CharBatch` es) on ``device``.

    Fields named in the batch's ``host_fields`` (lengths, which the recurrent encoder reads on the host) stay
    where they are. ``pin_memory`` pins host tensors first, so the copy to a GPU overlaps computation.
    """
    keep = getattr(batch, "host_fields", ())
    moved = {}
    for field in dataclasses.fields(batch):
        value = getattr(batch, field.name)
        if field.name not in keep and isinstance(value, (torch.Tensor, CharBatch)):
            if pin_memory:
                value = value.pin_memory() if isinstance(value, torch.Tensor) else CharBatch(
                    *(t.pin_memory() for t in value))
            value = value.to(device, non_blocking=True)
        moved[field.name] = value
    return dataclasses.replace(batch, **moved)
