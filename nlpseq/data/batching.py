"""Length-bucketed batching and padding."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def bucket_batches(lengths: Sequence[int], batch_size: int, shuffle: bool,
                   generator: torch.Generator | None = None, bucket_factor: int = 50) -> list[list[int]]:
    """Group example indices into batches of similar length.

    With ``shuffle`` the examples are shuffled, cut into pools of ``batch_size * bucket_factor``,
    each pool is sorted by length and cut into batches, and the batches are shuffled: padding stays
    small while batch composition still changes every epoch. Without ``shuffle`` examples are sorted
    by length (longest first) so evaluation pads as little as possible. The result depends only on
    ``lengths``, ``batch_size`` and the generator state, which makes resumed runs exact.
    """
    n = len(lengths)
    if not shuffle:
        order = sorted(range(n), key=lambda i: -lengths[i])
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    order = torch.randperm(n, generator=generator).tolist()
    pool = batch_size * bucket_factor
    batches = []
    for start in range(0, n, pool):
        chunk = sorted(order[start:start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    perm = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in perm]


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
