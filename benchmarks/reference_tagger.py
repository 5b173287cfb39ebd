"""Reference BiLSTM-CRF tagger with a character CNN, in plain PyTorch (the usual Lample / Ma & Hovy code)."""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.common import BiRNN, sequence_dropout, word_dropout


class ReferenceTagger(nn.Module):
    """words ``(batch, time)``, chars ``(batch, time, chars)``, lengths ``(batch,)`` -> CRF loss / best tags."""

    def __init__(self, num_words: int, num_chars: int, num_tags: int, cfg):
        super().__init__()
        cells = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
        self.words = nn.Embedding(num_words, cfg.embedding_dim, padding_idx=0)
        self.static = None  # Kim's frozen second copy of the vectors, beside the trained one
        if cfg.get("static_channel"):
            self.static = nn.Embedding(num_words, cfg.embedding_dim, padding_idx=0).requires_grad_(False)
        word_size = cfg.embedding_dim * (2 if self.static is not None else 1)
        self.use_chars = cfg.char_encoder == "cnn"
        char_size = cfg.char_hidden_size if self.use_chars else 0
        if self.use_chars:
            self.chars = nn.Embedding(num_chars, cfg.char_embedding_dim, padding_idx=0)
            self.conv = nn.Conv1d(cfg.char_embedding_dim, cfg.char_hidden_size, cfg.char_kernel_size,
                                  padding=cfg.char_kernel_size // 2)
        self.rnn = BiRNN(cells[cfg.cell], word_size + char_size, cfg.hidden_size, cfg.layers, cfg.dropout)
        self.out = nn.Linear(2 * cfg.hidden_size, num_tags)
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))
        self.dropout, self.word_dropout = cfg.dropout, cfg.word_dropout

    def emissions(self, words, chars, lengths) -> torch.Tensor:
        words = word_dropout(words, self.word_dropout, 1, self.training)
        x = self.words(words) if self.static is None else torch.cat([self.words(words), self.static(words)], dim=2)
        if self.use_chars:
            batch, time, width = chars.shape
            c = self.chars(chars.view(-1, width)).transpose(1, 2)  # (tokens, dim, chars)
            h = self.conv(c).masked_fill((chars.view(-1, width) == 0).unsqueeze(1), float("-inf"))
            h = h.max(dim=2).values.clamp(min=-1e4)  # padding tokens have no characters
            x = torch.cat([x, h.view(batch, time, -1)], dim=2)
        h, _ = self.rnn(sequence_dropout(x, self.dropout, self.training), lengths)
        return self.out(sequence_dropout(h, self.dropout, self.training))

    def loss(self, words, chars, lengths, tags) -> torch.Tensor:
        """Mean CRF negative log-likelihood over the batch."""
        em = self.emissions(words, chars, lengths)
        mask = torch.arange(em.size(1)).unsqueeze(0) < lengths.unsqueeze(1)
        score = self.start + em[:, 0]
        for t in range(1, em.size(1)):
            nxt = torch.logsumexp(score.unsqueeze(2) + self.transitions, dim=1) + em[:, t]
            score = torch.where(mask[:, t:t + 1], nxt, score)
        log_z = torch.logsumexp(score + self.end, dim=1)
        maskf = mask.float()
        gold = self.start[tags[:, 0]] + (em.gather(2, tags.unsqueeze(2)).squeeze(2) * maskf).sum(1)
        gold = gold + (self.transitions[tags[:, :-1], tags[:, 1:]] * maskf[:, 1:]).sum(1)
        gold = gold + self.end[tags.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)]
        return (log_z - gold).mean()

    @torch.no_grad()
    def decode(self, words, chars, lengths) -> list[list[int]]:
        """Viterbi: the best tag ids of each sentence, trimmed to its length."""
        em = self.emissions(words, chars, lengths)
        mask = torch.arange(em.size(1)).unsqueeze(0) < lengths.unsqueeze(1)
        score, pointers = self.start + em[:, 0], []
        for t in range(1, em.size(1)):
            best, idx = (score.unsqueeze(2) + self.transitions).max(dim=1)
            score = torch.where(mask[:, t:t + 1], best + em[:, t], score)
            pointers.append(torch.where(mask[:, t:t + 1], idx, torch.arange(em.size(2))))
        tag = (score + self.end).argmax(1)
        path = [tag]
        for idx in reversed(pointers):
            tag = idx.gather(1, tag.unsqueeze(1)).squeeze(1)
            path.append(tag)
        paths = torch.stack(path[::-1], 1).tolist()
        return [p[:n] for p, n in zip(paths, lengths.tolist())]
