"""Pooling a sequence of vectors into one, with padding masked out.

``last``: the encoder's final states (forward at the last real position, backward at position 0);
``mean`` / ``max``: over real positions only; ``max+mean``: both side by side (twice the width; ULMFiT's
concat pooling without its last state); ``attention``: a learned weighted sum (Yang et al. 2016, hierarchical
attention networks) whose softmax gives padding zero weight.
"""

from __future__ import annotations

import torch
from torch import nn

from nlpseq.modules.encoders import lengths_to_mask

POOLINGS = ("last", "mean", "max", "max+mean", "attention")


class AttentionPooling(nn.Module):
    """``score_t = v · tanh(W h_t)``; ``(batch, time, dim)`` -> ``(batch, dim)`` and weights ``(batch, time)``."""

    def __init__(self, input_size: int, attention_size: int):
        super().__init__()
        self.project = nn.Linear(input_size, attention_size)
        self.score = nn.Linear(attention_size, 1, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.score(torch.tanh(self.project(x))).squeeze(-1)
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        return torch.bmm(weights.unsqueeze(1), x).squeeze(1), weights


class SequencePooler(nn.Module):
    """Encoder outputs ``(batch, time, dim)`` + lengths (+ final states ``(batch, dim)``) -> ``(batch, output_size)``
    (``dim``, or ``2 * dim`` for ``max+mean``)."""

    def __init__(self, kind: str, input_size: int, attention_size: int = 100):
        super().__init__()
        if kind not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {kind!r}")
        self.kind = kind
        self.attention = AttentionPooling(input_size, attention_size) if kind == "attention" else None
        self.output_size = 2 * input_size if kind == "max+mean" else input_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, final: torch.Tensor | None = None) -> torch.Tensor:
        if self.kind == "last":
            if final is None:
                raise ValueError("last pooling needs the encoder's final states")
            return final
        mask = lengths_to_mask(lengths.to(x.device), x.size(1))
        if self.kind == "attention":
            return self.attention(x, mask)[0]
        if self.kind == "max":
            return _max_pool(x, mask)
        if self.kind == "mean":
            return _mean_pool(x, mask, lengths)
        return torch.cat([_max_pool(x, mask), _mean_pool(x, mask, lengths)], dim=-1)

    def extra_repr(self) -> str:
        return f"kind={self.kind}"


def _max_pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(batch, time, dim)`` and a ``(batch, time)`` mask of real positions -> ``(batch, dim)``."""
    return x.masked_fill(~mask.unsqueeze(-1), float("-inf")).max(dim=1).values


def _mean_pool(x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(batch, time, dim)`` -> ``(batch, dim)``: the mean over the real positions only."""
    summed = (x * mask.unsqueeze(-1).to(x.dtype)).sum(dim=1)
    return summed / lengths.to(x.device, x.dtype).clamp(min=1).unsqueeze(-1)
