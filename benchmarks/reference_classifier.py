"""Reference BiLSTM text classifier with max pooling, in plain PyTorch."""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.common import BiRNN, sequence_dropout, word_dropout


class ReferenceClassifier(nn.Module):
    """words ``(batch, time)``, lengths ``(batch,)`` -> class scores ``(batch, classes)``."""

    def __init__(self, num_words: int, num_classes: int, cfg):
        super().__init__()
        cells = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
        self.words = nn.Embedding(num_words, cfg.embedding_dim, padding_idx=0)
        self.rnn = BiRNN(cells[cfg.cell], cfg.embedding_dim, cfg.hidden_size, cfg.layers, cfg.dropout)
        self.out = nn.Linear(2 * cfg.hidden_size, num_classes)
        self.pooling, self.dropout = cfg.pooling, cfg.dropout
        self.embedding_dropout, self.word_dropout = cfg.embedding_dropout, cfg.word_dropout

    def forward(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.words(word_dropout(words, self.word_dropout, 1, self.training))
        h, final = self.rnn(sequence_dropout(x, self.embedding_dropout, self.training), lengths)
        if self.pooling == "last":
            pooled = final
        else:
            mask = (torch.arange(h.size(1)).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(2)
            if self.pooling == "max":
                pooled = h.masked_fill(~mask, float("-inf")).max(dim=1).values
            else:
                pooled = h.sum(1) / lengths.unsqueeze(1)
        return self.out(nn.functional.dropout(pooled, self.dropout, self.training))

    def loss(self, words, lengths, labels) -> torch.Tensor:
        return nn.functional.cross_entropy(self(words, lengths), labels)
