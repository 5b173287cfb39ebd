"""The rule types of the config schema (:mod:`nlpseq.schema`): what a key accepts, and how to say so."""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any


def show(value: Any) -> str:
    """A value as it is written on the command line: ``null``, ``true``, ``'abc'``, ``4``, ``[0.9, 0.999]``."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return repr(value)


def word(value: Any) -> str:
    return value if isinstance(value, str) else show(value)


def _or(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


@dataclass(frozen=True)
class Rule:
    """What a key accepts (:meth:`ok`) and, for the message, what it should be (:meth:`expected`).
    Subclasses define :meth:`accepts` (any value but None) and :meth:`words`; ``null`` accepts None too."""
    null: bool = False

    def ok(self, value: Any) -> bool:
        return self.null if value is None else self.accepts(value)

    def expected(self) -> str:
        return _or([*self.words(), "null"] if self.null else self.words())

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError

    def words(self) -> list[str]:
        raise NotImplementedError


@dataclass(frozen=True)
class Float(Rule):
    """A number (an int or a float, never a bool) within the bounds ``ge``/``gt`` (low) and ``le``/``lt`` (high)."""
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def accepts(self, value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and all(
            bound is None or holds(value, bound) for bound, holds in (
                (self.ge, operator.ge), (self.gt, operator.gt), (self.le, operator.le), (self.lt, operator.lt)))

    def bounds(self) -> str:
        """`` >= 1``, `` > 0``, `` in [0, 1)``."""
        low = f"[{self.ge:g}" if self.ge is not None else f"({self.gt:g}" if self.gt is not None else ""
        high = f"{self.le:g}]" if self.le is not None else f"{self.lt:g})" if self.lt is not None else ""
        if high:
            return f" in {low}, {high}"
        return f" {'>=' if low[:1] == '[' else '>'} {low[1:]}" if low else ""

    def words(self) -> list[str]:
        return [f"a number{self.bounds()}"]


@dataclass(frozen=True)
class Int(Float):
    """An integer (never a bool) within the bounds; ``odd`` (kernel sizes); ``also``: words it may be (``auto``)."""
    odd: bool = False
    also: tuple[str, ...] = ()

    def accepts(self, value: Any) -> bool:
        odd = not self.odd or isinstance(value, int) and value % 2 == 1
        return value in self.also or isinstance(value, int) and super().accepts(value) and odd

    def words(self) -> list[str]:
        return [f"an {'odd ' if self.odd else ''}integer{self.bounds()}", *map(repr, self.also)]


@dataclass(frozen=True, init=False)
class Choice(Rule):
    """One of ``options``, compared with their type (``1`` is not ``true``, ``'32'`` is not ``32``)."""
    options: tuple = ()

    def __init__(self, *options: Any):
        object.__setattr__(self, "options", options)
        object.__setattr__(self, "null", None in options)

    def accepts(self, value: Any) -> bool:
        return any(type(value) is type(option) and value == option for option in self.options)

    def words(self) -> list[str]:
        return ["one of " + ", ".join(word(o) for o in self.options if o is not None)]


@dataclass(frozen=True)
class Str(Rule):
    """A non-empty string matching ``pattern`` (all of it) when one is given; ``what`` says what it is."""
    pattern: str | None = None
    what: str = "a string"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and value != "" and (not self.pattern or bool(re.fullmatch(self.pattern, value)))

    def words(self) -> list[str]:
        return [self.what]


@dataclass(frozen=True)
class List(Rule):
    """A list of ``size`` to ``max_size`` (0: any number) values that ``item`` accepts (None: any);
    ``distinct`` compares them as strings (as the code does with labels)."""
    item: Rule | None = None
    size: int = 0
    max_size: int = 0
    distinct: bool = False
    what: str = "a list"

    def accepts(self, value: Any) -> bool:
        return (isinstance(value, list) and self.size <= len(value) <= (self.max_size or len(value))
                and all(self.item is None or self.item.ok(v) for v in value)
                and (not self.distinct or len({str(v) for v in value}) == len(value)))

    def words(self) -> list[str]:
        return [self.what]
