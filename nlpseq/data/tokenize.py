"""The word tokenizer for raw text at prediction time.

Rule (CoNLL / Penn-Treebank-like, documented in README): a token is
  * an abbreviation of single letters with dots, ``U.S.`` or ``e.g.``;
  * a run of letters/digits that may contain inner ``-``, ``'``, ``.``, ``,`` or ``/`` between
    letters/digits (``1996-08-22``, ``3.5``, ``1,000``, ``O'Neill``, ``and/or``);
  * otherwise any single non-space, non-word character (punctuation).
Text that is already tokenized with spaces keeps its tokens, except that punctuation glued to a word is
split off. Character offsets refer to the original string.
"""

from __future__ import annotations

import re

TOKEN = re.compile(r"(?:[^\W\d_]\.){2,}|\w+(?:[-'’.,/]\w+)*|[^\w\s]")


def tokenize_with_offsets(text: str) -> list[tuple[str, int, int]]:
    """``"EU rejects it."`` -> ``[("EU", 0, 2), ("rejects", 3, 10), ("it", 11, 13), (".", 13, 14)]``."""
    return [(m.group(), m.start(), m.end()) for m in TOKEN.finditer(text)]


DIGIT = re.compile(r"\d")


def zero_digits(text: str) -> str:
    """Every digit as 0 (``1996-08-22`` -> ``0000-00-00``), so numbers share word vectors."""
    return DIGIT.sub("0", text)


def tokenize(text: str) -> list[str]:
    return [t for t, _, _ in tokenize_with_offsets(text)]


def word_normaliser(data_cfg):
    """The mapping from a token to its word-vocabulary key (lowercasing, digits -> 0), per ``data`` config."""
    lower, zero = bool(data_cfg.lowercase), bool(data_cfg.zero_digits)

    def norm(token: str) -> str:
        if lower:
            token = token.lower()
        return zero_digits(token) if zero else token

    return norm
