"""Reading text files line by line: plain or gzip, strict UTF-8 with the failing line named.

Every problem with a file becomes a :class:`DataError` naming it (and the line, when known): a missing file, a
directory, bytes that are not UTF-8, and a ``.gz`` file that is not gzip at all, is corrupt or was cut short
(gzip finds these only while reading, so the line reached is named).
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from nlpseq.errors import DataError

STDIN = "<stdin>"  # the name standard input gets in messages


def check_file(path: str | Path) -> Path:
    """``path`` as a :class:`Path`; a :class:`DataError` when it is missing or a directory."""
    path = Path(path)
    if path.is_dir():
        raise DataError(str(path), None, "is a directory; expected a file")
    if not path.exists():
        raise DataError(str(path), None, "file not found")
    return path


def open_binary(path: str | Path) -> BinaryIO:
    """Open ``path`` for binary reading, decompressing transparently when it ends in ``.gz``."""
    path = check_file(path)
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def decode_line(raw: bytes, source: str, number: int) -> str:
    """``raw`` decoded as UTF-8 without its newline; a :class:`DataError` naming ``source:number`` and the bad
    byte when it is not UTF-8."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(source, number, f"is not valid UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})"
                        ) from None
    return text.rstrip("\r\n")


def decode_lines(raw_lines: Iterable[bytes], source: str) -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` for each line of ``raw_lines`` (from 1), decoded by :func:`decode_line`."""
    for number, raw in enumerate(raw_lines, start=1):
        yield number, decode_line(raw, source, number)


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` with line numbers from 1 and the newline stripped.

    Every line is decoded as UTF-8 on its own so that a bad byte is reported with its line.
    """
    number = 0
    with open_binary(path) as f:
        try:
            for number, text in decode_lines(f, str(path)):
                yield number, text
        except (OSError, EOFError, zlib.error) as e:
            raise unreadable(path, number + 1, e) from None


def unreadable(path: str | Path, line: int, error: BaseException) -> DataError:
    """The :class:`DataError` for a read of ``path`` that failed at ``line``: for a ``.gz`` file, that it is
    not a valid, complete gzip file."""
    if Path(path).suffix != ".gz":
        return DataError(str(path), line, f"could not be read ({error})")
    if isinstance(error, gzip.BadGzipFile) and "Not a gzipped file" in str(error):
        detail = "it has no gzip header: a plain file named .gz?"
    elif isinstance(error, EOFError):
        detail = "it ends before its compressed data does: truncated?"
    else:
        detail = f"corrupt compressed data: {error}"
    return DataError(str(path), line, f"is not a valid, complete gzip file ({detail})")
