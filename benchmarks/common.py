"""Pieces the reference models share: a bidirectional recurrent layer stack over padded batches, dropout."""

from __future__ import annotations

import torch
from torch import nn


def reverse_within_length(lengths: torch.Tensor, time: int) -> torch.Tensor:
    """``(batch, time)`` gather indices reversing each row's real positions; padding stays at the end."""
    steps = torch.arange(time).unsqueeze(0)
    lengths = lengths.unsqueeze(1)
    return torch.where(steps < lengths, lengths - 1 - steps, steps)


class BiRNN(nn.Module):
    """Stacked bidirectional ``nn.LSTM`` / ``nn.GRU``: ``(batch, time, in)`` -> ``(batch, time, 2 * hidden)``.

    The forward direction runs on the padded batch; the backward one on each sentence reversed within its
    length. Returns the outputs (zero at padding) and the final states ``(batch, 2 * hidden)``.
    """

    def __init__(self, cell: type[nn.Module], input_size: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        sizes = [input_size] + [2 * hidden] * (layers - 1)
        self.fwd = nn.ModuleList(cell(s, hidden, batch_first=True) for s in sizes)
        self.bwd = nn.ModuleList(cell(s, hidden, batch_first=True) for s in sizes)
        self.dropout, self.hidden = dropout, hidden

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, time, _ = x.shape
        mask = (torch.arange(time).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(2)
        rev = reverse_within_length(lengths, time).unsqueeze(2)
        for i, (fwd, bwd) in enumerate(zip(self.fwd, self.bwd)):
            if i > 0:
                x = sequence_dropout(x, self.dropout, self.training)
            out_f, _ = fwd(x)
            out_b, _ = bwd(x.gather(1, rev.expand(-1, -1, x.size(2))))
            x = torch.cat([out_f, out_b.gather(1, rev.expand(-1, -1, self.hidden))], dim=2) * mask
        last = (lengths - 1).view(batch, 1, 1).expand(-1, 1, self.hidden)
        final = torch.cat([x[:, :, :self.hidden].gather(1, last).squeeze(1), x[:, 0, self.hidden:]], dim=1)
        return x, final


def sequence_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """One dropout mask per sequence ``(batch, 1, dim)`` for a ``(batch, time, dim)`` tensor."""
    if not training or p == 0:
        return x
    mask = torch.empty(x.size(0), 1, x.size(2)).bernoulli_(1 - p) / (1 - p)
    return x * mask


def word_dropout(words: torch.Tensor, p: float, unk: int, training: bool) -> torch.Tensor:
    """Replace word ids ``(batch, time)`` by ``unk`` with probability ``p`` while training."""
    if not training or p == 0:
        return words
    return words.masked_fill((torch.rand(words.shape) < p) & (words != 0), unk)
