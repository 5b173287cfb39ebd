"""An exponential moving average of the model's weights, used for evaluation and the best checkpoint."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class WeightAverage:
    """``shadow = decay * shadow + (1 - decay) * weights`` after every optimizer step.

    The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` over the first updates so the average is not
    dominated by the random initialisation. Averaged weights generalise better than the last iterate and
    smooth the dev curve that early stopping reads.

    Parameters with sparse gradients (word embeddings under :class:`nlpseq.optim.LazyAdam`) change only in
    the rows of the batch, so only those rows are averaged at each step. A row that stayed constant for
    several steps is first brought up to date in closed form, ``shadow = w + (shadow - w) * prod(decays)``,
    which gives exactly the dense result at a fraction of the cost. Call :meth:`before_step` between
    ``backward()`` and ``optimizer.step()`` and :meth:`update` after it.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = float(decay)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for p in self.params]
        self.updates = 0
        self.log_decay = 0.0  # sum of log(decay) over all updates so far
        self.synced: dict[int, torch.Tensor] = {}  # sparse param index -> log_decay when each row was last averaged
        self.touched: dict[int, torch.Tensor] = {}  # sparse param index -> rows the coming step changes

    @torch.no_grad()
    def before_step(self) -> None:
        """Bring the rows the optimizer is about to change (those in a sparse gradient) up to date."""
        for i, p in enumerate(self.params):
            if p.grad is None or not p.grad.is_sparse:
                continue
            rows = p.grad.coalesce()._indices()[0]
            self._catch_up(i, rows)
            self.touched[i] = rows

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        dense = [i for i in range(len(self.params)) if i not in self.synced]
        torch._foreach_lerp_([self.shadow[i] for i in dense], [self.params[i].detach() for i in dense], 1.0 - decay)
        self.log_decay += math.log(decay)
        for i, rows in self.touched.items():
            shadow, weights = self.shadow[i], self.params[i].detach()
            shadow[rows] = shadow[rows].lerp_(weights[rows], 1.0 - decay)
            self.synced[i][rows] = self.log_decay
        self.touched = {}

    def _catch_up(self, i: int, rows: torch.Tensor | None = None) -> None:
        """Apply the decays of the updates since each row (all rows for None) was last averaged."""
        synced = self.synced.setdefault(i, torch.full((self.params[i].size(0),), self.log_decay, dtype=torch.float64))
        rows = torch.arange(synced.numel()) if rows is None else rows
        weights, shadow = self.params[i].detach()[rows], self.shadow[i]
        factor = torch.exp(self.log_decay - synced[rows]).to(shadow.dtype).view(-1, *[1] * (shadow.dim() - 1))
        shadow[rows] = weights + (shadow[rows] - weights) * factor
        synced[rows] = self.log_decay

    @torch.no_grad()
    def flush(self) -> None:
        """Bring every row of every sparse parameter up to date (before the average is read or saved)."""
        for i in list(self.synced):
            self._catch_up(i)

    @contextmanager
    @torch.no_grad()
    def applied(self) -> Iterator[None]:
        """Swap the averaged weights into the model for the duration of the block."""
        self.flush()
        backup = [p.detach().clone() for p in self.params]
        for p, s in zip(self.params, self.shadow):
            p.copy_(s)
        try:
            yield
        finally:
            for p, b in zip(self.params, backup):
                p.copy_(b)

    def state_dict(self) -> dict:
        self.flush()
        return {"shadow": list(self.shadow), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        for s, saved in zip(self.shadow, state["shadow"]):
            s.copy_(saved)
        self.updates = int(state["updates"])
        self.log_decay = 0.0
        self.synced = {i: torch.zeros_like(t) for i, t in self.synced.items()}  # every row is up to date
