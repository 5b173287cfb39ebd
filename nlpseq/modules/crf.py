"""A linear-chain conditional random field, vectorised over the batch (loops only over time)."""

from __future__ import annotations

import torch
from torch import nn

NEG = -1e4  # a score no allowed path can reach; finite so logsumexp stays NaN-free


def allowed_transitions_bio(labels: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BIO constraints: ``I-X`` may only follow ``B-X`` or ``I-X`` and may not start a sentence.

    Returns bool tensors ``(transitions (from, to), start (to,), end (from,))``.
    """
    n = len(labels)
    trans = torch.ones(n, n, dtype=torch.bool)
    start = torch.ones(n, dtype=torch.bool)
    end = torch.ones(n, dtype=torch.bool)
    for j, to in enumerate(labels):
        if to.startswith("I-"):
            start[j] = False
            for i, frm in enumerate(labels):
                trans[i, j] = frm[2:] == to[2:] and frm[:2] in ("B-", "I-")
    return trans, start, end


class ConditionalRandomField(nn.Module):
    """Emissions ``(batch, time, tags)`` and a bool mask ``(batch, time)`` (real tokens first).

    ``constraints`` is an optional ``(transitions, start, end)`` triple of bool tensors from
    :func:`allowed_transitions_bio`; disallowed moves get a score of -1e4.
    """

    def __init__(self, num_tags: int, constraints: tuple[torch.Tensor, ...] | None = None):
        super().__init__()
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))
        if constraints is None:
            constraints = (torch.ones(num_tags, num_tags, dtype=torch.bool), torch.ones(num_tags, dtype=torch.bool),
                           torch.ones(num_tags, dtype=torch.bool))
        for name, allowed in zip(("allowed_transitions", "allowed_start", "allowed_end"), constraints):
            self.register_buffer(name, allowed.clone(), persistent=True)

    def _scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (self.transitions.masked_fill(~self.allowed_transitions, NEG),
                self.start.masked_fill(~self.allowed_start, NEG),
                self.end.masked_fill(~self.allowed_end, NEG))

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Forward algorithm: ``log Z`` per sequence, ``(batch,)``."""
        trans, start, end = self._scores()
        alpha = start + emissions[:, 0]  # (batch, tags)
        for t in range(1, emissions.size(1)):
            # (batch, from, 1) + (from, to) -> logsumexp over from -> (batch, to)
            nxt = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t:t + 1], nxt, alpha)
        return torch.logsumexp(alpha + end, dim=1)

    def path_score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Score of the given tag sequences ``(batch, time)`` -> ``(batch,)``."""
        trans, start, end = self._scores()
        maskf = mask.to(emissions.dtype)
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)
        score = start[tags[:, 0]] + (emit * maskf).sum(1)
        score = score + (trans[tags[:, :-1], tags[:, 1:]] * maskf[:, 1:]).sum(1)
        last = tags.gather(1, (mask.sum(1) - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
        return score + end[last]

    def forward(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood per sequence ``(batch,)``."""
        return self.log_partition(emissions, mask) - self.path_score(emissions, tags, mask)

    @torch.no_grad()
    def viterbi_tags(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """Best tag sequence for each sequence, trimmed to its length."""
        trans, start, end = self._scores()
        batch, time, n = emissions.shape
        score = start + emissions[:, 0]
        keep = torch.arange(n, device=emissions.device).expand(batch, n)
        pointers = []
        for t in range(1, time):
            best, idx = (score.unsqueeze(2) + trans).max(dim=1)  # (batch, to)
            on = mask[:, t:t + 1]
            score = torch.where(on, best + emissions[:, t], score)
            pointers.append(torch.where(on, idx, keep))  # past the end: stay on the same tag
        tag = (score + end).argmax(dim=1)
        path = [tag]
        for idx in reversed(pointers):
            tag = idx.gather(1, tag.unsqueeze(1)).squeeze(1)
            path.append(tag)
        paths = torch.stack(path[::-1], dim=1).tolist()
        lengths = mask.sum(1).tolist()
        return [p[:n_] for p, n_ in zip(paths, lengths)]
