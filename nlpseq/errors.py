"""Errors that reach the user as one clear line instead of a traceback."""

from __future__ import annotations


class NlpseqError(Exception):
    """Base class: the scripts print these as ``error: <message>`` and exit with status 1."""


class DataError(NlpseqError):
    """Bad input data; names the file and, when known, the 1-based line number."""

    def __init__(self, path: str, line: int | None, message: str):
        self.path, self.line = str(path), line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")


class ConfigError(NlpseqError, ValueError):
    """A setting that cannot be used; names the config key."""


class TrainingDiverged(NlpseqError):
    """The loss became NaN or infinite."""


def check_choice(key: str, value, choices) -> None:
    """Raise :class:`ConfigError` naming ``key`` when ``value`` is not one of ``choices``."""
    if value not in choices:
        shown = ", ".join("null" if c is None else str(c) for c in choices)
        raise ConfigError(f"{key} must be one of {shown}, got {value!r}")


class NotOffered(NlpseqError, AttributeError):
    """A method the model's task does not offer (``nlpseq.load(ner).translate``); also an ``AttributeError``, so
    ``hasattr(predictor, "translate")`` stays False."""
