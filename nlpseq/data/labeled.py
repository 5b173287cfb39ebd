"""Text classification files: ``<label> <text>`` lines (SST) and JSON lines (IMDB).

Every reader checks each label against the configured label set and names the file and line of
anything it cannot use: an unknown label, a line without text, a JSON line that is not an object or
lacks a field, an empty file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from nlpseq.data.io import read_lines
from nlpseq.errors import ConfigError, DataError

HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


class LabeledText(NamedTuple):
    text: str
    label: str
    line: int  # 1-based line in its file, for error messages


def read_label_first(path: str | Path, labels: Sequence[str]) -> list[LabeledText]:
    """``<label> <text>`` per line (the SST ``stsa.*`` files): the label is the first space-separated field."""
    allowed = set(labels)
    examples = []
    for number, line in read_lines(path):
        if not line.strip():
            continue
        label, _, text = line.strip().partition(" ")
        if label not in allowed:
            raise DataError(str(path), number, f"label {label!r} is not one of {', '.join(labels)}; "
                                               f"expected '<label> <text>'")
        if not text.strip():
            raise DataError(str(path), number, f"has label {label!r} but no text; expected '<label> <text>'")
        examples.append(LabeledText(text.strip(), label, number))
    if not examples:
        raise DataError(str(path), None, "is empty; expected '<label> <text>' lines")
    return examples


def read_jsonl(path: str | Path, labels: Sequence[str], text_field: str = "text",
               label_field: str = "label") -> list[LabeledText]:
    """One JSON object per line with a text and a label field (the IMDB ``*.jsonl.gz`` files).

    Labels are compared as strings (``1`` and ``"1"`` are the same label). HTML line breaks
    (``<br />``) become spaces.
    """
    allowed = set(labels)
    examples = []
    for number, line in read_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(str(path), number, f"is not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(record, dict):
            raise DataError(str(path), number, f"expected a JSON object with {text_field!r} and {label_field!r}")
        for field in (text_field, label_field):
            if field not in record:
                raise DataError(str(path), number, f"has no {field!r} field; expected {text_field!r} and "
                                                   f"{label_field!r}")
        label = str(record[label_field])
        if label not in allowed:
            raise DataError(str(path), number, f"label {label!r} is not one of {', '.join(labels)}")
        text = record[text_field]
        if not isinstance(text, str) or not clean_html(text):
            raise DataError(str(path), number, f"field {text_field!r} is empty or not a string")
        examples.append(LabeledText(clean_html(text), label, number))
    if not examples:
        raise DataError(str(path), None, "is empty; expected one JSON object per line")
    return examples


def clean_html(text: str) -> str:
    """``<br />`` line breaks -> spaces, and runs of whitespace -> one space."""
    return " ".join(HTML_BREAK.sub(" ", text).split())


READERS = {"label_first": read_label_first, "jsonl": read_jsonl}


def split_off(examples: list[LabeledText], size: int, seed: int) -> tuple[list[LabeledText], list[LabeledText]]:
    """Hold out ``size`` examples chosen with ``seed``: ``(rest, held_out)``, each in file order.

    ``size`` is ``data.dev_size``: a :class:`ConfigError` names it unless ``0 < size < len(examples)``.
    """
    if size >= len(examples):
        raise ConfigError(f"data.dev_size={size} but the training file has only {len(examples)} examples; set "
                          f"data.dev_size below {len(examples)} (the rest is trained on) or give a dev file (data.dev)")
    if size <= 0:
        raise ConfigError(f"data.dev_size must be an integer >= 1, got {size}")
    chosen = set(torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed))[:size].tolist())
    rest = [e for i, e in enumerate(examples) if i not in chosen]
    return rest, [e for i, e in enumerate(examples) if i in chosen]
