"""The word (+ character) embedder shared by the tagger and the classifier, built from their flat ``model`` config."""

from __future__ import annotations

from nlpseq.errors import check_choice
from nlpseq.modules.embeddings import CHAR_ENCODERS, TokenEmbedder, build_char_encoder


def build_token_embedder(cfg, num_words: int, num_chars: int) -> TokenEmbedder:
    """A :class:`TokenEmbedder` from the ``model`` keys both word models share (``schema._WORD_MODEL``).

    Keys added after the first checkpoints (character settings in the classifier, ``singleton_dropout``,
    ``static_channel``) fall back to the values those checkpoints were trained with.
    """
    char_kind = cfg.get("char_encoder")
    check_choice("model.char_encoder", char_kind, CHAR_ENCODERS)
    char_encoder = build_char_encoder(char_kind, num_chars, cfg.get("char_embedding_dim", 30),
                                      cfg.get("char_hidden_size", 50), cfg.get("char_kernel_size", 3))
    return TokenEmbedder(num_words, cfg.embedding_dim, char_encoder, cfg.word_dropout,
                         singleton_dropout=cfg.get("singleton_dropout", 0.0),
                         static_channel=bool(cfg.get("static_channel", False)))
