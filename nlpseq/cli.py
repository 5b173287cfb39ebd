"""What the scripts share: turning nlpseq's errors into one line, and reading input text."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import BinaryIO

from omegaconf import DictConfig, OmegaConf

from nlpseq.data.io import STDIN, decode_lines, read_lines
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


def required_checkpoint(cfg: DictConfig) -> str:
    """``cfg.checkpoint``; an :class:`NlpseqError` saying what to give when it is missing (``???``) or empty."""
    path = None if OmegaConf.is_missing(cfg, "checkpoint") else cfg.checkpoint
    if path in (None, ""):
        raise NlpseqError("checkpoint= is required: the path of a checkpoint file "
                          "(e.g. checkpoint=runs/ner/.../checkpoints/best.pt)")
    return str(path)


def writable_output(path: str | None) -> str | None:
    """``output=``: checked before any prediction is made, so a bad path costs nothing: an :class:`NlpseqError`
    when it is a directory or its folder does not exist."""
    if path is None:
        return None
    target = Path(str(path))
    if target.is_dir():
        raise NlpseqError(f"output={path} is a directory; expected a file name to write the predictions to")
    if not target.parent.is_dir():
        raise NlpseqError(f"output={path}: the folder {target.parent} does not exist")
    return str(path)


def stdin_bytes() -> BinaryIO:
    """Standard input as bytes: the decoding is ours, so that bad bytes are reported as a file's are (the text
    layer would pass them on as surrogates under a C locale, or raise a traceback)."""
    return sys.stdin.buffer


def read_input_lines(path: str) -> list[tuple[str, int, str]]:
    """``(source name, line number, text)`` for every line of ``path`` (``-`` for standard input); bytes that
    are not UTF-8 are a :class:`DataError` naming the source (``<stdin>``) and the line."""
    if path == "-":
        return [(STDIN, i, line) for i, line in decode_lines(stdin_bytes(), STDIN)]
    return [(path, i, line) for i, line in read_lines(path)]
