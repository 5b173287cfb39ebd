"""Pretrained word vectors: reading GloVe / word2vec text files and matching them to a vocabulary."""

from __future__ import annotations

from pathlib import Path

import torch

from nlpseq.data.io import read_lines
from nlpseq.data.tokenize import zero_digits
from nlpseq.errors import DataError


def read_vectors(path: str | Path, wanted: set[str]) -> tuple[dict[str, list[float]], int]:
    """Read a GloVe / word2vec text file (plain or ``.gz``), keeping only the ``wanted`` words.

    A word2vec header line (``count dim``) is skipped. Returns ``({word: vector}, dim)``. Every row must have
    at least as many values as the first (a :class:`DataError` names the first that has not); a row with more
    holds a word with spaces in it (GloVe 840B has a few), whose vector is its last ``dim`` values. The values
    of the rows kept must be numbers.
    """
    vectors: dict[str, list[float]] = {}
    dim = None
    for number, line in read_lines(path):
        word, _, rest = line.rstrip().partition(" ")
        if number == 1 and rest.isdigit():
            continue  # word2vec header
        if dim is None:
            dim = len(rest.split())
            if dim == 0:
                raise DataError(str(path), number, "expected 'word v1 v2 ...' (GloVe / word2vec text format)")
        if rest.count(" ") != dim - 1 or "  " in rest:  # not plain 'v1 v2 ...': look closer
            word, rest = _split_row(word, rest, dim, path, number)
        if word in wanted and word not in vectors:
            vectors[word] = _numbers(rest.split(), path, number)
    if dim is None:
        raise DataError(str(path), None, "is empty; expected 'word v1 v2 ...' lines")
    return vectors, dim


def _split_row(word: str, rest: str, dim: int, path: str | Path, number: int) -> tuple[str, str]:
    """``(word, values)`` of a row whose values are not ``dim`` single-spaced fields: extra leading fields
    belong to the word; fewer than ``dim`` values is a :class:`DataError`."""
    values = rest.split()
    if len(values) < dim:
        raise DataError(str(path), number,
                        f"expected {dim} values after the word (as on the first row), got {len(values)}")
    return " ".join([word, *values[:-dim]]), " ".join(values[-dim:])


def _numbers(values: list[str], path: str | Path, number: int) -> list[float]:
    """``values`` as floats; a :class:`DataError` naming the first that is not a number."""
    try:
        return [float(v) for v in values]
    except ValueError:
        column = next(i for i, v in enumerate(values) if not _is_number(v))
        raise DataError(str(path), number, f"value {column + 1} after the word is {values[column]!r}; "
                                           "expected a number") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def match_vectors(vocab_itos: list[str], vectors: dict[str, list[float]], dim: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows for each vocabulary word: exact, lowercased, or with digits as 0. Returns (weights, found)."""
    weights = torch.zeros(len(vocab_itos), dim)
    found = torch.zeros(len(vocab_itos), dtype=torch.bool)
    for i, word in enumerate(vocab_itos):
        for key in vector_keys(word):
            if key in vectors:
                weights[i] = torch.tensor(vectors[key])
                found[i] = True
                break
    return weights, found


def vector_keys(word: str) -> tuple[str, ...]:
    """The keys :func:`match_vectors` tries for ``word``, for selecting what :func:`read_vectors` keeps."""
    return word, word.lower(), zero_digits(word.lower())
