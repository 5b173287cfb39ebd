"""sentencepiece subword models: training (cached by content hash), encoding and decoding.

This is the only file that calls sentencepiece's API. A model is kept as the bytes of its serialized
proto, so checkpoints store it as plain data and rebuild it with no file around.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import sentencepiece

from nlpseq.errors import check_choice

log = logging.getLogger(__name__)

MODEL_TYPES = ("unigram", "bpe", "char", "word")


def default_cache_dir() -> Path:
    """``sentencepiece/`` in nlpseq's cache folder (:func:`nlpseq.data.downloads.cache_dir`)."""
    from nlpseq.data.downloads import cache_dir

    return cache_dir() / "sentencepiece"


def train_sentencepiece(texts: Sequence[str], vocab_size: int, model_type: str = "unigram",
                        character_coverage: float = 1.0, cache_dir: str | Path | None = None) -> bytes:
    """Train a model on ``texts`` (the training split only) and return its bytes.

    The result is cached under ``cache_dir`` by a hash of the texts and the options, so a second run
    on the same data reuses it. ``vocab_size`` is an upper bound on small corpora (``hard_vocab_limit``
    off). Ids: ``<unk>`` 0, ``<s>`` 1, ``</s>`` 2, no padding id (vocabularies add their own).
    """
    check_choice("data.spm_model_type", model_type, MODEL_TYPES)
    options = dict(vocab_size=int(vocab_size), model_type=model_type, character_coverage=float(character_coverage),
                   hard_vocab_limit=False, max_sentence_length=1 << 16, input_sentence_size=2_000_000,
                   shuffle_input_sentence=True, num_threads=max(1, min(os.cpu_count() or 1, 8)),
                   minloglevel=2)
    digest = hashlib.sha256(repr(sorted(options.items())).encode())
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\n")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = cache / f"{digest.hexdigest()[:32]}.model"
    if cached.exists():
        log.info("sentencepiece model reused from %s", cached)
        return cached.read_bytes()
    buffer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_writer=buffer, **options)
    model = buffer.getvalue()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(model)
        os.replace(tmp, cached)
        log.info("sentencepiece %s model (%d pieces) trained and cached in %s", model_type,
                 SentencePieceModel(model).vocab_size, cached)
    except OSError as e:  # a read-only home is no reason to fail training
        log.warning("could not cache the sentencepiece model in %s: %s", cache, e)
    return model


class SentencePieceModel:
    """A trained model from its bytes: text <-> pieces <-> ids."""

    def __init__(self, model: bytes):
        self.model = bytes(model)
        self.processor = sentencepiece.SentencePieceProcessor(model_proto=self.model)

    @property
    def vocab_size(self) -> int:
        return self.processor.get_piece_size()

    def pieces(self) -> list[str]:
        """Every piece, in id order."""
        return [self.processor.id_to_piece(i) for i in range(self.vocab_size)]

    def encode(self, text: str) -> list[str]:
        """``"Ein Mann"`` -> ``["▁Ein", "▁Mann"]``."""
        return self.processor.encode(text, out_type=str)

    def encode_ids(self, text: str) -> list[int]:
        return self.processor.encode(text, out_type=int)

    def decode(self, pieces: Sequence[str]) -> str:
        """Pieces back to detokenized text."""
        return self.processor.decode_pieces(list(pieces))

    def decode_ids(self, ids: Sequence[int]) -> str:
        return self.processor.decode_ids(list(ids))
