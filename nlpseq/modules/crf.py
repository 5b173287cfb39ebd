"""A linear-chain conditional random field, vectorised over the batch and the tags (loops only over time).

The partition function is the hot spot of a tagger's CRF. :class:`LogPartition` computes it in exp space,
one ``(batch, tags) @ (tags, tags)`` product per step, and writes its gradient by hand: the backward
algorithm gives the tag and transition marginals, which *are* the gradient of ``log Z``, so no autograd
graph of small per-step operations is built.
"""

from __future__ import annotations

import torch
from torch import nn

NEG = -1e4  # a score no allowed path can reach; finite so logsumexp stays NaN-free


def _log_matmul(scores: torch.Tensor, exp_trans: torch.Tensor) -> torch.Tensor:
    """``logsumexp_i(scores[b, i] + log exp_trans[i, j])`` ``(batch, tags)`` as one product, stable by the row max.

    Disallowed transitions have ``exp_trans == 0``; a column only they reach would be ``log 0``: it is clamped
    to the smallest normal float, a score ~87 below the row's best, which no real path depends on.
    """
    top = scores.amax(dim=1, keepdim=True)
    return torch.mm((scores - top).exp(), exp_trans).clamp_min(torch.finfo(scores.dtype).tiny).log() + top


def _full_precision(emissions: torch.Tensor) -> torch.Tensor:
    """Half-precision emissions as float32, others as they are (32-bit runs are unchanged, float64 stays).

    In bfloat16 / float16 the exp-space products of the forward and backward algorithms lose ``log Z`` (a bf16 NER
    run on a GPU went NaN), so under ``trainer.precision=bf16|fp16`` the encoder runs in half precision and the
    CRF, with autocast switched off, in float32."""
    return emissions.float() if emissions.dtype in (torch.float16, torch.bfloat16) else emissions


class LogPartition(torch.autograd.Function):
    """``log Z`` ``(batch,)`` of emissions ``(batch, time, tags)`` under transitions ``(from, to)``, start and end
    scores ``(tags,)`` and a bool mask ``(batch, time)`` (real tokens first, every sequence at least one)."""

    @staticmethod
    def forward(ctx, emissions, trans, start, end, mask):
        time = emissions.size(1)
        exp_trans = trans.exp()
        alphas = torch.empty_like(emissions)  # alpha[t, j]: log-sum of the paths over 0..t that end in tag j
        alpha = start + emissions[:, 0]
        alphas[:, 0] = alpha
        for t in range(1, time):
            alpha = torch.where(mask[:, t:t + 1], _log_matmul(alpha, exp_trans) + emissions[:, t], alpha)
            alphas[:, t] = alpha  # past a sequence's end alpha is carried unchanged
        log_z = torch.logsumexp(alpha + end, dim=1)
        ctx.save_for_backward(emissions, trans, end, mask, alphas, log_z)
        return log_z

    @staticmethod
    def backward(ctx, grad_z):
        emissions, trans, end, mask, alphas, log_z = ctx.saved_tensors
        time = emissions.size(1)
        exp_trans_t = trans.exp().t()
        betas = torch.empty_like(emissions)  # beta[t, i]: log-sum of the paths from tag i at t to the end
        beta = end.expand_as(emissions[:, 0])
        betas[:, time - 1] = beta
        for t in range(time - 2, -1, -1):
            beta = torch.where(mask[:, t + 1:t + 2], _log_matmul(emissions[:, t + 1] + beta, exp_trans_t), beta)
            betas[:, t] = beta
        maskf = mask.to(emissions.dtype)
        scale = grad_z.view(-1, 1, 1)
        # P(tag j at t), zero at padding: d log Z / d emissions.
        unary = (alphas + betas - log_z.view(-1, 1, 1)).exp() * maskf.unsqueeze(2) * scale
        grad_trans = grad_start = grad_end = None
        if ctx.needs_input_grad[1]:
            # P(tag i at t - 1, tag j at t) summed over real positions: d log Z / d transitions.
            pair = (alphas[:, :-1].unsqueeze(3) + trans + (emissions[:, 1:] + betas[:, 1:]).unsqueeze(2)
                    - log_z.view(-1, 1, 1, 1)).exp()
            grad_trans = torch.einsum("btij,bt->ij", pair, maskf[:, 1:] * grad_z.unsqueeze(1))
        if ctx.needs_input_grad[2]:
            grad_start = unary[:, 0].sum(0)
        if ctx.needs_input_grad[3]:
            grad_end = ((alphas[:, -1] + end - log_z.unsqueeze(1)).exp() * grad_z.unsqueeze(1)).sum(0)
        return unary, grad_trans, grad_start, grad_end, None


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
        """Forward algorithm: ``log Z`` per sequence, ``(batch,)`` (gradient by the backward algorithm)."""
        trans, start, end = self._scores()
        with torch.autocast(emissions.device.type, enabled=False):
            return LogPartition.apply(_full_precision(emissions), trans, start, end, mask)

    def path_score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Score of the given tag sequences ``(batch, time)`` -> ``(batch,)``."""
        trans, start, end = self._scores()
        emissions = _full_precision(emissions)
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
        emissions = _full_precision(emissions)
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
