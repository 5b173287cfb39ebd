"""Subword codecs for translation: text <-> sentencepiece pieces <-> model ids, one model per language or joint.

A :class:`SubwordCodec` is a sentencepiece model (:mod:`nlpseq.data.spm`, trained on the training split only,
cached by content hash) plus the vocabulary of its pieces with nlpseq's specials first: ``<pad>`` 0, ``<unk>`` 1,
``<s>`` 2, ``</s>`` 3, then the model's pieces in id order. The vocabulary is a pure function of the model, so
a checkpoint stores only the model bytes (plain data) and rebuilds the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from nlpseq.data.spm import SentencePieceModel, train_sentencepiece
from nlpseq.data.vocab import BOS, EOS, PAD, UNK, Vocabulary

log = logging.getLogger(__name__)


class SubwordCodec:
    def __init__(self, model: bytes):
        self.spm = SentencePieceModel(model)
        self.vocab = Vocabulary(self.spm.pieces(), pad=PAD, unk=UNK, extra_specials=(BOS, EOS))
        self.pad_id, self.unk_id = self.vocab.pad_id, self.vocab.unk_id
        self.bos_id, self.eos_id = self.vocab.stoi[BOS], self.vocab.stoi[EOS]

    def __len__(self) -> int:
        return len(self.vocab)

    def pieces(self, text: str) -> list[str]:
        return self.spm.encode(text)

    def encode(self, text: str) -> list[int]:
        """Text -> piece ids (no bos / eos)."""
        return self.vocab.encode(self.spm.encode(text))

    def encode_sources(self, texts: Sequence[str], limit: int | None) -> list[list[int]]:
        """Source ids + eos of each text, cut to ``limit`` subwords (``data.max_source_length``) with a warning."""
        out = []
        for i, text in enumerate(texts):
            ids = self.encode(text)
            if limit and len(ids) > limit:
                log.warning("input %d has %d subwords: only the first %d are translated (data.max_source_length)",
                            i + 1, len(ids), limit)
                ids = ids[:limit]
            out.append(ids + [self.eos_id])
        return out

    def to_pieces(self, ids: Sequence[int]) -> list[str]:
        """Ids -> pieces, specials other than ``<unk>`` dropped."""
        skip = {self.pad_id, self.bos_id, self.eos_id}
        return [self.vocab.itos[i] for i in ids if i not in skip]

    def decode(self, ids: Sequence[int]) -> str:
        """Ids -> detokenized text (sentencepiece's own detokenization)."""
        return self.spm.decode(self.to_pieces(ids))


def train_codecs(data_cfg, sources: Sequence[str], targets: Sequence[str]) -> tuple[SubwordCodec, SubwordCodec]:
    """``(source codec, target codec)`` trained on the training split; ``data.spm_joint`` shares one model
    (trained on both sides) between the languages, else each language gets ``data.spm_vocab_size`` pieces."""
    options = dict(vocab_size=int(data_cfg.spm_vocab_size), model_type=data_cfg.spm_model_type,
                   character_coverage=float(data_cfg.get("spm_character_coverage", 1.0)))
    if data_cfg.spm_joint:
        codec = SubwordCodec(train_sentencepiece([*sources, *targets], **options))
        return codec, codec
    return (SubwordCodec(train_sentencepiece(list(sources), **options)),
            SubwordCodec(train_sentencepiece(list(targets), **options)))


def codecs_state(source: SubwordCodec, target: SubwordCodec) -> dict:
    """Plain data for a checkpoint: the model bytes (the target's only when it differs)."""
    joint = source is target
    return {"joint": joint, "source_spm": source.spm.model, "target_spm": None if joint else target.spm.model}


def codecs_from_state(state: dict) -> tuple[SubwordCodec, SubwordCodec]:
    source = SubwordCodec(state["source_spm"])
    return source, source if state["joint"] else SubwordCodec(state["target_spm"])
