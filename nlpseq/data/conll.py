"""CoNLL column files: ``token POS chunk NER`` (CoNLL-2003) or plain ``token tag``.

Sentences are separated by blank lines; ``-DOCSTART-`` lines mark documents and are skipped.
The tag is the last column. Input tagged in IOB1 is converted to IOB2 (BIO) with ``scheme="iob1"``;
input read with ``scheme="iob2"`` is checked to be valid BIO.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from nlpseq.data.io import read_lines
from nlpseq.errors import DataError, check_choice

TAG_PATTERN = re.compile(r"^(?:O|[BI]-\S+)$")
SCHEMES = ("iob1", "iob2")


class TaggedSentence(NamedTuple):
    tokens: list[str]
    tags: list[str]
    line: int  # 1-based line of the sentence's first token, for error messages


def read_conll(path: str | Path, scheme: str = "iob2") -> list[TaggedSentence]:
    """Read a CoNLL file (plain or ``.gz``) into sentences with IOB2 tags.

    Raises :class:`DataError` naming the file and line for a wrong column count, a tag outside
    the BIO scheme, an ``I-`` tag that cannot follow its predecessor, non-UTF-8 bytes or an empty file.
    """
    check_choice("data.scheme", scheme, SCHEMES)
    sentences: list[TaggedSentence] = []
    tokens: list[str] = []
    raw_tags: list[tuple[int, str]] = []
    columns = None
    start = 0

    def flush() -> None:
        if tokens:
            tags = _to_iob2(raw_tags) if scheme == "iob1" else _check_iob2(raw_tags, path)
            sentences.append(TaggedSentence(list(tokens), tags, start))
            tokens.clear()
            raw_tags.clear()

    for number, line in read_lines(path):
        fields = line.split()
        if not fields:
            flush()
            continue
        if fields[0] == "-DOCSTART-":
            flush()
            continue
        if columns is None:
            if len(fields) < 2:
                raise DataError(str(path), number, f"expected at least 2 columns (token ... tag), got {line!r}")
            columns = len(fields)
        elif len(fields) != columns:
            raise DataError(str(path), number,
                            f"expected {columns} columns like the lines before, got {len(fields)}: {line!r}")
        tag = fields[-1]
        if not TAG_PATTERN.match(tag):
            raise DataError(str(path), number, f"tag {tag!r} is not in the BIO scheme (O, B-TYPE or I-TYPE)")
        if not tokens:
            start = number
        tokens.append(fields[0])
        raw_tags.append((number, tag))
    flush()
    if not sentences:
        raise DataError(str(path), None, "contains no sentences (expected 'token ... tag' lines)")
    return sentences


def _check_iob2(tags: list[tuple[int, str]], path) -> list[str]:
    out, prev = [], "O"
    for number, tag in tags:
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            raise DataError(str(path), number,
                            f"{tag} follows {prev}; in IOB2 an entity starts with B-{tag[2:]} "
                            "(if the file is IOB1, set data.scheme=iob1)")
        out.append(tag)
        prev = tag
    return out


def _to_iob2(tags: list[tuple[int, str]]) -> list[str]:
    """IOB1 -> IOB2: an I-X that does not continue an X entity starts one (becomes B-X).

    B-X is kept as it is: in IOB1 it separates two adjacent X entities, and already starts one.
    """
    out, prev = [], "O"
    for _number, tag in tags:
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        out.append(tag)
        prev = tag
    return out


def write_conll(path: str | Path, rows: list[list[tuple[str, ...]]]) -> None:
    """Write sentences as space-separated columns, a blank line after each sentence (conlleval layout)."""
    with open(path, "w", encoding="utf-8") as f:
        for sentence in rows:
            for columns in sentence:
                f.write(" ".join(columns) + "\n")
            f.write("\n")
