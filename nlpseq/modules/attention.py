"""Attention of a decoder state over encoder outputs, one decoder step at a time.

Both kinds share one call: ``forward(query, keys, values, mask)`` with ``query (batch, dec_hidden)``,
``values (batch, src_time, enc_hidden)`` and ``mask (batch, src_time)`` true on real positions, returning
``context (batch, enc_hidden)`` and ``weights (batch, src_time)``. The keys are the values projected by
``project_keys``: that projection does not depend on the decoder state, so a decoder computes it once per
batch, before its time loop, instead of once per output token.

Padding gets exactly zero weight (its score is set to ``-inf`` before the softmax), so the context equals
that of the sentence alone as long as padded values are finite (``RecurrentEncoder`` zeroes them). Every
row needs at least one real position, or its weights are NaN.
"""

from __future__ import annotations

import torch
from torch import nn

from nlpseq.errors import check_choice

ATTENTIONS = ("bahdanau", "luong", "none")


def _attend(scores: torch.Tensor, values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """scores ``(batch, src_time)`` -> context ``(batch, enc_hidden)``, weights ``(batch, src_time)``."""
    weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
    return torch.bmm(weights.unsqueeze(1), values).squeeze(1), weights


class BahdanauAttention(nn.Module):
    """Additive attention (Bahdanau et al. 2015): ``score = v · tanh(W_q q + W_k k)``.

    ``project_keys`` applies ``W_k`` (and the one bias), giving keys ``(batch, src_time, attention_size)``.
    """

    def __init__(self, query_size: int, key_size: int, attention_size: int):
        super().__init__()
        self.query_projection = nn.Linear(query_size, attention_size, bias=False)  # the key side carries the bias
        self.key_projection = nn.Linear(key_size, attention_size)
        self.score = nn.Linear(attention_size, 1, bias=False)
        self.context_size = key_size

    def project_keys(self, values: torch.Tensor) -> torch.Tensor:
        """``(batch, src_time, key_size)`` -> ``(batch, src_time, attention_size)``; call once per batch."""
        return self.key_projection(values)

    def forward(self, query: torch.Tensor, keys: torch.Tensor | None, values: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``keys=None`` projects ``values`` here: fine for one call, wasteful inside a decoder loop."""
        if keys is None:
            keys = self.project_keys(values)
        scores = self.score(torch.tanh(self.query_projection(query).unsqueeze(1) + keys)).squeeze(-1)
        return _attend(scores, values, mask)


class LuongAttention(nn.Module):
    """Multiplicative "general" attention (Luong et al. 2015): ``score = q · (W k)``.

    ``project_keys`` computes ``W k`` once, giving keys ``(batch, src_time, query_size)``; each step is then
    one batched dot product with the query.
    """

    def __init__(self, query_size: int, key_size: int):
        super().__init__()
        self.key_projection = nn.Linear(key_size, query_size, bias=False)  # a bias would add q·b to every score
        self.context_size = key_size

    def project_keys(self, values: torch.Tensor) -> torch.Tensor:
        """``(batch, src_time, key_size)`` -> ``(batch, src_time, query_size)``; call once per batch."""
        return self.key_projection(values)

    def forward(self, query: torch.Tensor, keys: torch.Tensor | None, values: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``keys=None`` projects ``values`` here: fine for one call, wasteful inside a decoder loop."""
        if keys is None:
            keys = self.project_keys(values)
        scores = torch.bmm(keys, query.unsqueeze(-1)).squeeze(-1)
        return _attend(scores, values, mask)


def build_attention(kind: str, query_size: int, key_size: int,
                    attention_size: int) -> BahdanauAttention | LuongAttention | None:
    """``bahdanau`` | ``luong`` | ``none`` (returns None); ``attention_size`` is used by ``bahdanau`` only."""
    check_choice("model.attention", kind, ATTENTIONS)
    if kind == "bahdanau":
        return BahdanauAttention(query_size, key_size, attention_size)
    if kind == "luong":
        return LuongAttention(query_size, key_size)
    return None
