"""Token embeddings: words, optional character-level word features, optional pretrained vectors."""

from __future__ import annotations

import math

import torch
from torch import nn

from nlpseq.data.batching import CharBatch
from nlpseq.modules.encoders import RecurrentEncoder, lengths_to_mask


class CharCNN(nn.Module):
    """Characters of each word ``(words, chars)`` -> ``(words, filters)`` by convolution and masked max-pool.

    The convolution is written as a linear layer over each window of ``kernel_size`` characters: the
    same function as ``nn.Conv1d(padding=kernel_size // 2)``, but its backward pass is one matrix
    multiply, several times faster than the CPU convolution kernel for these small shapes.
    """

    def __init__(self, num_chars: int, embedding_dim: int = 30, filters: int = 50, kernel_size: int = 3,
                 pad_id: int = 0):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.embed = nn.Embedding(num_chars, embedding_dim, padding_idx=pad_id)
        self.window = nn.Linear(kernel_size * embedding_dim, filters)
        self.kernel_size = kernel_size
        self.output_size = filters

    def forward(self, chars: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.embed(chars)  # (words, chars, dim)
        half = self.kernel_size // 2
        x = nn.functional.pad(x, (0, 0, half, half))  # zero "characters" at both ends of every word
        windows = x.unfold(1, self.kernel_size, 1)  # (words, chars, dim, kernel)
        h = self.window(windows.transpose(2, 3).flatten(2))  # (words, chars, filters)
        # Padding characters must not win the max, or a word's features would depend on its batch.
        h = h.masked_fill(~lengths_to_mask(lengths, h.size(1)).unsqueeze(2), float("-inf"))
        return h.max(dim=1).values


class CharLSTM(nn.Module):
    """Characters of each word ``(words, chars)`` -> ``(words, 2 * hidden)``: final states of a BiLSTM."""

    def __init__(self, num_chars: int, embedding_dim: int = 30, hidden_size: int = 25, pad_id: int = 0):
        super().__init__()
        self.embed = nn.Embedding(num_chars, embedding_dim, padding_idx=pad_id)
        self.rnn = RecurrentEncoder(embedding_dim, hidden_size, "lstm", 1, bidirectional=True)
        self.output_size = self.rnn.output_size

    def forward(self, chars: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.rnn(self.embed(chars), lengths)[1]


class CharFeatures(nn.Module):
    """Character encoders side by side: ``(words, chars)`` -> ``(words, sum of their output sizes)``.

    A char-CNN sees character n-grams anywhere in a word, a char-LSTM its prefix and suffix as wholes: the
    two find different cues (capitalisation patterns, affixes), so a tagger may use both.
    """

    def __init__(self, encoders: list[nn.Module]):
        super().__init__()
        self.encoders = nn.ModuleList(encoders)
        self.output_size = sum(e.output_size for e in encoders)

    def forward(self, chars: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.cat([encoder(chars, lengths) for encoder in self.encoders], dim=-1)


CHAR_ENCODERS = (None, "none", "cnn", "lstm", "cnn+lstm")


def build_char_encoder(kind: str | None, num_chars: int, embedding_dim: int, hidden_size: int,
                       kernel_size: int = 3) -> nn.Module | None:
    """``cnn`` -> :class:`CharCNN`, ``lstm`` -> :class:`CharLSTM`, ``cnn+lstm`` -> both (:class:`CharFeatures`),
    ``none`` / ``None`` -> no character features. ``hidden_size``: CNN filters, LSTM units per direction."""
    if kind == "cnn+lstm":
        return CharFeatures([CharCNN(num_chars, embedding_dim, hidden_size, kernel_size),
                             CharLSTM(num_chars, embedding_dim, hidden_size)])
    if kind == "cnn":
        return CharCNN(num_chars, embedding_dim, hidden_size, kernel_size)
    if kind == "lstm":
        return CharLSTM(num_chars, embedding_dim, hidden_size)
    if kind in (None, "none"):
        return None
    raise ValueError(f"char encoder must be cnn, lstm, cnn+lstm or none, got {kind!r}")


class TokenEmbedder(nn.Module):
    """Word ids ``(batch, time)`` (+ char ids ``(batch, time, chars)``) -> ``(batch, time, output_size)``.

    ``word_dropout`` replaces a training token by ``unk_id`` with that probability, so the unknown-word
    vector is trained on contexts like those of rare words at test time. ``singleton_dropout`` does the
    same for the words marked by :meth:`mark_singletons` (Lample et al. 2016 replace words seen once in
    training with probability 0.5): the tagger learns to lean on character features for unseen words.

    ``static_channel`` adds a second, frozen copy of the word vectors (Kim 2014's "multichannel"): training
    moves the first copy for the task while the second keeps every word, including those seen only in
    dev/test, in the pretrained space. Without :meth:`load_vectors` it stays zero.
    """

    def __init__(self, num_words: int, embedding_dim: int, char_encoder: nn.Module | None = None,
                 word_dropout: float = 0.0, pad_id: int = 0, unk_id: int = 1, char_pad_id: int = 0,
                 singleton_dropout: float = 0.0, static_channel: bool = False):
        super().__init__()
        self.words = nn.Embedding(num_words, embedding_dim, padding_idx=pad_id)
        bound = math.sqrt(3.0 / embedding_dim)
        nn.init.uniform_(self.words.weight, -bound, bound)
        with torch.no_grad():
            self.words.weight[pad_id].zero_()
        self.static = nn.Embedding(num_words, embedding_dim, padding_idx=pad_id) if static_channel else None
        if self.static is not None:
            nn.init.zeros_(self.static.weight)
            self.static.weight.requires_grad_(False)
        self.chars = char_encoder
        self.word_dropout, self.unk_id, self.pad_id, self.char_pad_id = word_dropout, unk_id, pad_id, char_pad_id
        self.singleton_dropout = singleton_dropout
        self.register_buffer("singletons", torch.zeros(num_words, dtype=torch.bool), persistent=False)
        self.output_size = embedding_dim * (2 if static_channel else 1) + (
            char_encoder.output_size if char_encoder is not None else 0)

    def forward(self, words: torch.Tensor, chars: torch.Tensor | CharBatch | None = None) -> torch.Tensor:
        """words ``(batch, time)``; chars ``(batch, time, max_chars)`` or a :class:`CharBatch` (each distinct
        word once, as the tasks build them) -> ``(batch, time, output_size)``."""
        if self.training and (self.word_dropout > 0 or self.singleton_dropout > 0):
            p = torch.where(self.singletons[words], max(self.singleton_dropout, self.word_dropout), self.word_dropout)
            drop = torch.rand(words.shape, device=words.device) < p
            words = words.masked_fill(drop & (words != self.pad_id), self.unk_id)
        x = self.words(words)
        if self.static is not None:
            x = torch.cat([x, self.static(words)], dim=-1)
        if self.chars is None:
            return x
        mask = words != self.pad_id
        if isinstance(chars, CharBatch):  # each distinct word once, then copied to its tokens
            features = self.chars(chars.ids, (chars.ids != self.char_pad_id).sum(1).clamp(min=1))
            full = features.to(x.dtype)[chars.index] * mask.unsqueeze(-1).to(x.dtype)
            return torch.cat([x, full], dim=-1)
        flat = chars[mask]  # only real tokens: (n_tokens, chars)
        features = self.chars(flat, (flat != self.char_pad_id).sum(1).clamp(min=1))
        full = x.new_zeros(*words.shape, features.size(-1))
        full[mask] = features.to(x.dtype)
        return torch.cat([x, full], dim=-1)

    def mark_singletons(self, ids: torch.Tensor) -> None:
        """Mark the word ids that ``singleton_dropout`` applies to (words seen once in training)."""
        self.singletons.zero_()
        self.singletons[ids] = True

    def load_vectors(self, vectors: torch.Tensor, found: torch.Tensor, freeze: bool = False) -> None:
        """Copy ``vectors`` ``(vocab, dim)`` into the rows where ``found`` ``(vocab,)`` is true.

        ``freeze`` keeps those rows fixed (their gradient is zeroed) while words without a vector still
        learn: training words then stay in the same space as the dev/test words that only have a vector.
        """
        with torch.no_grad():
            self.words.weight[found] = vectors[found].to(self.words.weight.dtype)
            if self.static is not None:
                self.static.weight[found] = vectors[found].to(self.static.weight.dtype)
        if freeze:
            keep = (~found).to(self.words.weight.dtype).unsqueeze(1)
            self.words.weight.register_hook(lambda grad: _keep_rows(grad, keep.to(grad.device)))


def _keep_rows(grad: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``grad`` (dense, or sparse with sparse embeddings) with the rows where ``keep`` ``(rows, 1)`` is 0 zeroed."""
    if not grad.is_sparse:
        return grad * keep
    grad = grad.coalesce()
    rows = grad._indices()[0]
    return torch.sparse_coo_tensor(grad._indices(), grad._values() * keep[rows], grad.shape, check_invariants=False,
                                   is_coalesced=True)

