"""Text -> tokens for the classification pipeline, chosen by ``data.tokenizer``.

* ``whitespace``: the corpus's own tokens (SST is already tokenized);
* ``regex``: the documented word rule of :mod:`nlpseq.data.tokenize` (raw text such as IMDB);
* ``sentencepiece``: subwords of a model trained on the training split (:mod:`nlpseq.data.spm`).

Lowercasing (``data.lowercase``) is applied first. The state is plain data (the sentencepiece model
as bytes), so a checkpoint rebuilds the exact tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence

from nlpseq.data.spm import SentencePieceModel, train_sentencepiece
from nlpseq.data.tokenize import tokenize
from nlpseq.errors import check_choice

TOKENIZERS = ("whitespace", "regex", "sentencepiece")


class TextTokenizer:
    def __init__(self, kind: str, lowercase: bool = False, spm_model: bytes | None = None):
        check_choice("data.tokenizer", kind, TOKENIZERS)
        if kind == "sentencepiece" and spm_model is None:
            raise ValueError("a sentencepiece tokenizer needs its model")
        self.kind, self.lowercase = kind, bool(lowercase)
        self.spm = SentencePieceModel(spm_model) if spm_model is not None else None

    @classmethod
    def train(cls, data_cfg, texts: Sequence[str]) -> TextTokenizer:
        """Build the tokenizer ``data_cfg`` describes; a sentencepiece model is trained on ``texts``."""
        lowercase = bool(data_cfg.lowercase)
        model = None
        if data_cfg.tokenizer == "sentencepiece":
            model = train_sentencepiece([t.lower() if lowercase else t for t in texts], data_cfg.spm_vocab_size,
                                        data_cfg.spm_model_type)
        return cls(data_cfg.tokenizer, lowercase, model)

    def __call__(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        if self.kind == "whitespace":
            return text.split()
        if self.kind == "regex":
            return tokenize(text)
        return self.spm.encode(text)

    def state(self) -> dict:
        return {"kind": self.kind, "lowercase": self.lowercase,
                "spm_model": self.spm.model if self.spm is not None else None}

    @classmethod
    def from_state(cls, state: dict) -> TextTokenizer:
        return cls(state["kind"], state["lowercase"], state["spm_model"])


TRUNCATIONS = ("head", "tail", "head_tail")


def truncate(tokens: list[str], max_tokens: int | None, keep: str = "head") -> list[str]:
    """At most ``max_tokens`` tokens: the first ones, the last ones, or (``head_tail``) the first quarter
    and the last three quarters of the budget (Sun et al. 2019 found head+tail best for long reviews)."""
    check_choice("data.truncate", keep, TRUNCATIONS)
    if not max_tokens or len(tokens) <= max_tokens:
        return tokens
    if keep == "head":
        return tokens[:max_tokens]
    if keep == "tail":
        return tokens[-max_tokens:]
    head = max_tokens // 4
    return tokens[:head] + tokens[len(tokens) - (max_tokens - head):]
