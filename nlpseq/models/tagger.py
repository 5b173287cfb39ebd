"""Sequence tagger: token embedder -> recurrent encoder -> projection -> softmax or CRF."""

from __future__ import annotations

import torch
from torch import nn

from nlpseq.errors import check_choice
from nlpseq.models.words import build_token_embedder
from nlpseq.modules.crf import ConditionalRandomField, allowed_transitions_bio
from nlpseq.modules.dropout import SequenceDropout
from nlpseq.modules.embeddings import TokenEmbedder
from nlpseq.modules.encoders import CELLS, RecurrentEncoder, lengths_to_mask


class SequenceTagger(nn.Module):
    """Scores tags for every token. ``crf=None`` means an independent softmax per token."""

    def __init__(self, embedder: TokenEmbedder, encoder: RecurrentEncoder, num_tags: int,
                 crf: ConditionalRandomField | None, dropout: float, locked_dropout: bool = True):
        super().__init__()
        self.embedder, self.encoder, self.crf = embedder, encoder, crf
        self.dropout = SequenceDropout(dropout, locked_dropout)
        self.projection = nn.Linear(encoder.output_size, num_tags)

    def emissions(self, words: torch.Tensor, chars: torch.Tensor | None, lengths: torch.Tensor) -> torch.Tensor:
        """words ``(batch, time)``, chars ``(batch, time, chars)`` -> tag scores ``(batch, time, tags)``."""
        x = self.dropout(self.embedder(words, chars))
        h, _ = self.encoder(x, lengths)
        return self.projection(self.dropout(h))

    def loss(self, words, chars, lengths, tags) -> torch.Tensor:
        """Mean negative log-likelihood: per sentence with a CRF, per token with softmax."""
        scores = self.emissions(words, chars, lengths)
        mask = lengths_to_mask(lengths.to(scores.device), scores.size(1))
        if self.crf is not None:
            return self.crf(scores, tags, mask).mean()
        return nn.functional.cross_entropy(scores[mask], tags[mask])

    @torch.no_grad()
    def decode(self, words, chars, lengths) -> list[list[int]]:
        """Best tag ids per sentence, each trimmed to its length."""
        scores = self.emissions(words, chars, lengths)
        mask = lengths_to_mask(lengths.to(scores.device), scores.size(1))
        if self.crf is not None:
            return self.crf.viterbi_tags(scores, mask)
        best = scores.argmax(-1).tolist()
        return [row[:n] for row, n in zip(best, lengths.tolist())]


def build_tagger(cfg, num_words: int, num_chars: int, labels: list[str]) -> SequenceTagger:
    """Build a tagger from the flat ``model`` config (see ``nlpseq/conf/model/tagger.yaml``)."""
    check_choice("model.cell", cfg.cell, CELLS)
    embedder = build_token_embedder(cfg, num_words, num_chars)
    encoder = RecurrentEncoder(embedder.output_size, cfg.hidden_size, cfg.cell, cfg.layers, cfg.bidirectional,
                               cfg.dropout, cfg.locked_dropout)
    crf = None
    if cfg.crf:
        crf = ConditionalRandomField(len(labels), allowed_transitions_bio(labels) if cfg.constrain_bio else None)
    return SequenceTagger(embedder, encoder, len(labels), crf, cfg.dropout, cfg.locked_dropout)
