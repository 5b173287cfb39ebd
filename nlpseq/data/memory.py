"""Generated long-memory problems: adding, copy memory and temporal order, the same examples for a given seed.

* ``adding`` (Arjovsky et al. 2016): inputs ``(T, 2)``: a value U[0, 1] and a marker channel with one 1 in each
  half; the target is the sum of the two marked values. Always predicting 1 scores MSE 1/6.
* ``copy`` (Arjovsky et al. 2016): 10 symbols from 8, ``T - 1`` blanks, a delimiter, 10 blanks (``T + 20``
  steps); the target is blank everywhere but the last 10 steps, which recall the symbols. Knowing only that
  blanks come first scores cross-entropy ``10 ln 8 / (T + 20)`` per step (0.173 at T = 100).
* ``order`` (Hochreiter & Schmidhuber 1997, task 6a): ``T`` steps start with B and end with E; two steps, one
  in [10%, 20%] of the sequence and one in [50%, 60%], hold X or Y, all others a, b, c or d; the class is the
  order of the two (XX, XY, YX, YY: chance 25%).

Symbols are ids (``copy``: 0 blank, 1-8 symbols, 9 delimiter; ``order``: 0-3 a-d, 4 X, 5 Y, 6 B, 7 E), one-hot
encoded by :func:`one_hot_inputs`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nlpseq.errors import ConfigError

COPY_SYMBOLS, COPY_RECALL = 8, 10  # 8 symbols to remember, 10 of them per sequence
COPY_BLANK, COPY_DELIMITER = 0, 9
ORDER_X, ORDER_Y, ORDER_B, ORDER_E = 4, 5, 6, 7
KINDS = ("adding", "copy", "order")
VOCABULARY = {"copy": COPY_SYMBOLS + 2, "order": 8}  # one-hot width of the symbol problems
MINIMUM_LENGTH = {"adding": 2, "copy": 1, "order": 10}  # a marker in each half; X/Y windows apart


@dataclass
class MemoryExamples:
    """``inputs``: ``(n, steps, 2)`` floats (adding) or ``(n, steps)`` symbol ids; ``targets``: ``(n,)`` sums
    (adding), ``(n, steps)`` ids to emit at every step (copy) or ``(n,)`` classes (order)."""

    kind: str
    inputs: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return len(self.targets)


def generate(kind: str, count: int, length: int, seed: int) -> MemoryExamples:
    """``count`` examples of problem ``kind`` with ``length`` T; the same ones for the same ``seed``."""
    check_problem(kind, length)
    generator = torch.Generator().manual_seed(int(seed))
    return {"adding": _adding, "copy": _copy, "order": _order}[kind](count, length, generator)


def check_problem(kind: str, length: int) -> None:
    """A :class:`ConfigError` (also a ``ValueError``) for an unknown problem or a ``length`` too short for it."""
    if kind not in KINDS:
        raise ConfigError(f"data.problem must be one of {', '.join(KINDS)}, got {kind!r}")
    if length < MINIMUM_LENGTH[kind]:
        raise ConfigError(f"data.length={length} is too short for the {kind} problem: it needs T >= "
                          f"{MINIMUM_LENGTH[kind]}")


def _adding(count: int, length: int, g: torch.Generator) -> MemoryExamples:
    values = torch.rand(count, length, generator=g)
    half = length // 2
    first = torch.randint(0, half, (count,), generator=g)
    second = torch.randint(half, length, (count,), generator=g)
    markers = torch.zeros(count, length)
    rows = torch.arange(count)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    return MemoryExamples("adding", torch.stack([values, markers], dim=-1), values[rows, first] + values[rows, second])


def _copy(count: int, length: int, g: torch.Generator) -> MemoryExamples:
    symbols = torch.randint(1, COPY_SYMBOLS + 1, (count, COPY_RECALL), generator=g)
    steps = length + 2 * COPY_RECALL
    inputs = torch.full((count, steps), COPY_BLANK, dtype=torch.long)
    inputs[:, :COPY_RECALL] = symbols
    inputs[:, COPY_RECALL + length - 1] = COPY_DELIMITER
    targets = torch.full((count, steps), COPY_BLANK, dtype=torch.long)
    targets[:, -COPY_RECALL:] = symbols
    return MemoryExamples("copy", inputs, targets)


def _order(count: int, length: int, g: torch.Generator) -> MemoryExamples:
    inputs = torch.randint(0, 4, (count, length), generator=g)
    inputs[:, 0], inputs[:, -1] = ORDER_B, ORDER_E
    early = _between(count, 0.1 * length, 0.2 * length, g)
    late = _between(count, 0.5 * length, 0.6 * length, g)
    first, second = (torch.randint(0, 2, (count,), generator=g) for _ in range(2))  # 0: X, 1: Y
    rows = torch.arange(count)
    inputs[rows, early] = ORDER_X + first
    inputs[rows, late] = ORDER_X + second
    return MemoryExamples("order", inputs, 2 * first + second)


def _between(count: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    """Positions in ``[max(1, round(low)), round(high)]`` (never the B at position 0)."""
    start = max(1, round(low))
    return torch.randint(start, max(round(high), start) + 1, (count,), generator=g)


def one_hot_inputs(examples: MemoryExamples, rows: torch.Tensor | None = None) -> torch.Tensor:
    """The network input ``(n, steps, features)``: the adding problem's two channels, the others one-hot."""
    inputs = examples.inputs if rows is None else examples.inputs[rows]
    if examples.kind == "adding":
        return inputs
    return torch.nn.functional.one_hot(inputs, VOCABULARY[examples.kind]).float()


def chance(kind: str, length: int) -> tuple[str, float]:
    """The memoryless baseline: ``("mse", 1/6)`` for adding, ``("loss", 10 ln 8 / (T + 20))`` for copy (and its
    recall accuracy is 1/8), ``("accuracy", 25)`` percent for order."""
    if kind == "adding":
        return "mse", 1.0 / 6.0
    if kind == "copy":
        return "loss", COPY_RECALL * math.log(COPY_SYMBOLS) / (length + 2 * COPY_RECALL)
    return "accuracy", 25.0
