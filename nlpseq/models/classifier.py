"""Text classifier: token embedder -> recurrent encoder -> pooling over time -> (hidden layer) -> classes."""

from __future__ import annotations

import torch
from torch import nn

from nlpseq.errors import check_choice
from nlpseq.models.words import build_token_embedder
from nlpseq.modules.dropout import SequenceDropout
from nlpseq.modules.embeddings import TokenEmbedder
from nlpseq.modules.encoders import CELLS, RecurrentEncoder
from nlpseq.modules.pooling import POOLINGS, SequencePooler


class TextClassifier(nn.Module):
    """Word ids ``(batch, time)`` + lengths ``(batch,)`` -> class scores ``(batch, classes)``."""

    def __init__(self, embedder: TokenEmbedder, encoder: RecurrentEncoder, pooler: SequencePooler, num_classes: int,
                 embedding_dropout: float, dropout: float, hidden_size: int | None = None,
                 locked_dropout: bool = True):
        super().__init__()
        self.embedder, self.encoder, self.pooler = embedder, encoder, pooler
        self.embedding_dropout = SequenceDropout(embedding_dropout, locked_dropout)
        self.dropout = nn.Dropout(dropout)
        size = pooler.output_size
        self.hidden = nn.Sequential(nn.Linear(size, hidden_size), nn.ReLU(), nn.Dropout(dropout)) \
            if hidden_size else nn.Identity()
        self.projection = nn.Linear(hidden_size or size, num_classes)

    def forward(self, words: torch.Tensor, lengths: torch.Tensor, chars: torch.Tensor | None = None) -> torch.Tensor:
        """chars ``(batch, time, chars)`` when the embedder has character features."""
        x = self.embedding_dropout(self.embedder(words, chars))
        h, final = self.encoder(x, lengths)
        return self.projection(self.hidden(self.dropout(self.pooler(h, lengths, final))))

    def loss(self, words: torch.Tensor, lengths: torch.Tensor, chars: torch.Tensor | None, labels: torch.Tensor,
             label_smoothing: float = 0.0) -> torch.Tensor:
        """Mean cross-entropy over the batch."""
        return nn.functional.cross_entropy(self(words, lengths, chars), labels, label_smoothing=label_smoothing)


def build_classifier(cfg, num_words: int, num_classes: int, num_chars: int = 0) -> TextClassifier:
    """Build a classifier from the flat ``model`` config (see ``nlpseq/conf/model/classifier.yaml``)."""
    check_choice("model.cell", cfg.cell, CELLS)
    check_choice("model.pooling", cfg.pooling, POOLINGS)
    embedder = build_token_embedder(cfg, num_words, num_chars)
    encoder = RecurrentEncoder(embedder.output_size, cfg.hidden_size, cfg.cell, cfg.layers, cfg.bidirectional,
                               cfg.dropout, cfg.locked_dropout)
    pooler = SequencePooler(cfg.pooling, encoder.output_size, cfg.attention_size)
    return TextClassifier(embedder, encoder, pooler, num_classes, cfg.embedding_dropout, cfg.dropout,
                          cfg.classifier_hidden_size, cfg.locked_dropout)
