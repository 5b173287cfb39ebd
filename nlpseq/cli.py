"""What the scripts share: turning nlpseq's errors into one line, and reading input text."""

from __future__ import annotations

import functools
import sys

from nlpseq.data.io import read_lines
from nlpseq.errors import NlpseqError


def exits_cleanly(main):
    """Run ``main``; an :class:`NlpseqError` prints ``error: ...`` and exits 1 instead of a traceback."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except NlpseqError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)

    return wrapper


def read_input_lines(path: str) -> list[tuple[str, int, str]]:
    """``(source name, line number, text)`` for every line of ``path`` (``-`` for standard input)."""
    if path == "-":
        return [("<stdin>", i, line.rstrip("\r\n")) for i, line in enumerate(sys.stdin, start=1)]
    return [(path, i, line) for i, line in read_lines(path)]

