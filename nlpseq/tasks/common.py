"""Pieces every task wires the same way."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import torch
from omegaconf import DictConfig, open_dict
from torch import nn

from nlpseq.data.datasets import resolve_path
from nlpseq.data.vectors import match_vectors, read_vectors, vector_keys
from nlpseq.data.vocab import Vocabulary

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")


class Objective(nn.Module):
    """The training objective the trainer drives (and ``DistributedDataParallel`` wraps): ``forward(batch)`` is
    the task's ``loss(model, batch)``, a scalar."""

    def __init__(self, model: nn.Module, loss: Callable[[nn.Module, object], torch.Tensor]):
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, batch) -> torch.Tensor:
        return self.loss(self.model, batch)


def pretrained_rows(cfg: DictConfig, words: Vocabulary, all_words: Iterable[str]
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ``cfg.model.pretrained_vectors`` for ``words``: ``(weights (vocab, dim), found (vocab,))``.

    With ``model.extend_vocab_with_pretrained``, words of ``all_words`` (every split's word keys) that
    have a vector join ``words`` first (as in Lample et al. 2016 and NCRF++): only their pretrained
    embedding is used, never their labels. ``model.embedding_dim`` is set to the vectors' dimension.
    """
    path = resolve_path(cfg.model.pretrained_vectors, cfg.data.root, download=bool(cfg.data.get("download", False)))
    all_words = set(all_words)
    vectors, dim = read_vectors(path, {k for w in all_words for k in vector_keys(w)})
    if cfg.model.extend_vocab_with_pretrained:
        words.extend(sorted(w for w in all_words if any(k in vectors for k in vector_keys(w))))
    weights, found = match_vectors(words.itos, vectors, dim)
    if dim != cfg.model.embedding_dim:
        log.info("model.embedding_dim set to %d to match %s", dim, path)
        with open_dict(cfg):
            cfg.model.embedding_dim = dim
    log.info("pretrained vectors: %d of %d vocabulary words found in %s (%.1f%%)", int(found.sum()), len(words),
             path, 100.0 * float(found.float().mean()))
    return weights, found
