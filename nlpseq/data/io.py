"""Reading text files line by line: plain or gzip, strict UTF-8 with the failing line named."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

from nlpseq.errors import DataError


def open_binary(path: str | Path):
    """Open ``path`` for binary reading, decompressing transparently when it ends in ``.gz``."""
    path = Path(path)
    if not path.exists():
        raise DataError(str(path), None, "file not found")
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` with line numbers from 1 and the newline stripped.

    Every line is decoded as UTF-8 on its own so that a bad byte is reported with its line.
    """
    with open_binary(path) as f:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(
                    str(path), number, f"is not valid UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})"
                ) from None
            yield number, text.rstrip("\r\n")
