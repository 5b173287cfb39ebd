"""Line-aligned parallel text: two files (plain or ``.gz``), line ``i`` of one translates line ``i`` of the other.

This is the layout of Multi30k (``train.de`` / ``train.en``). Sentences are kept as text (outer whitespace
stripped); tokenizing is the task's job. A pair with an empty side is skipped and counted rather than fatal:
corpora have a few, and dropping them keeps the rest aligned. Files of different lengths are fatal, since
every pair after the missing line would be misaligned.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import closing
from itertools import zip_longest
from pathlib import Path
from typing import NamedTuple

from nlpseq.data.io import read_lines
from nlpseq.errors import DataError


class ParallelPair(NamedTuple):
    source: str
    target: str
    line: int  # 1-based line number in both files, for error messages


class ParallelPairs(list):
    """The pairs of two line-aligned files (a list of :class:`ParallelPair`) and ``lines``, the line count of
    each file (skipped pairs included), so that an output can keep line N for source line N."""

    def __init__(self, pairs: Iterable[ParallelPair] = (), lines: int = 0):
        super().__init__(pairs)
        self.lines = lines


def by_line(pairs: list[ParallelPair], texts: list[str]) -> list[str]:
    """One text per line of the files ``pairs`` were read from: ``texts[i]`` on the line of ``pairs[i]`` and an
    empty string on each line whose pair was skipped. ``pairs`` without ``lines`` (a plain list) keep ``texts``."""
    total = getattr(pairs, "lines", None)
    if total is None:
        return list(texts)
    out = [""] * total
    for pair, text in zip(pairs, texts):
        out[pair.line - 1] = text
    return out


def read_parallel(src_path: str | Path, tgt_path: str | Path) -> tuple[ParallelPairs, int]:
    """Read two line-aligned files into ``(pairs, skipped_empty)``.

    ``skipped_empty`` counts lines where either side is empty or whitespace only. Raises :class:`DataError`
    when a file is missing, has a non-UTF-8 line (named with its line), the two files have different
    line counts (naming both and where the shorter ends) or no line holds a sentence pair.
    """
    pairs: list[ParallelPair] = []
    skipped = 0
    src_lines, tgt_lines = read_lines(src_path), read_lines(tgt_path)
    # closing(): a mismatch leaves one generator half-read; close its file now rather than at garbage collection
    with closing(src_lines), closing(tgt_lines):
        for src_item, tgt_item in zip_longest(src_lines, tgt_lines):
            if src_item is None or tgt_item is None:
                # the shorter file ended before this pair; count the rest of the longer one for the message
                ended = len(pairs) + skipped
                if src_item is None:
                    _raise_mismatch(src_path, ended, tgt_path, ended + 1 + sum(1 for _ in tgt_lines))
                _raise_mismatch(tgt_path, ended, src_path, ended + 1 + sum(1 for _ in src_lines))
            number, source = src_item
            target = tgt_item[1].strip()
            source = source.strip()
            if not source or not target:
                skipped += 1
                continue
            pairs.append(ParallelPair(source, target, number))
    if not pairs:
        raise DataError(str(src_path), None,
                        f"no sentence pairs with {tgt_path} ({skipped} lines, every one empty on one side or both)")
    return ParallelPairs(pairs, len(pairs) + skipped), skipped


def _raise_mismatch(short: str | Path, short_count: int, long: str | Path, long_count: int) -> None:
    raise DataError(str(short), None,
                    f"has {short_count} lines but {long} has {long_count}: {short} ends after line {short_count}; "
                    "parallel files must be line-aligned (one sentence per line, same line count)")
