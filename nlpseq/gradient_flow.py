"""How much gradient reaches each time step: ``‖∂L/∂h_t‖`` of a recurrent model's top-layer state, per step.

A fused ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` keeps the states between steps to itself, so autograd cannot be
asked for ``∂L/∂h_t``. Here the encoder is unrolled step by step with ``nn.RNNCell`` / ``nn.LSTMCell`` /
``nn.GRUCell`` modules that share its weights (the same function, step for step), every ``h_t`` is a tensor of the
graph, and ``torch.autograd.grad`` returns the total derivative of the loss with respect to each of them: through
the head at that step and through every later step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

CELL_OF = {nn.RNN: nn.RNNCell, nn.LSTM: nn.LSTMCell, nn.GRU: nn.GRUCell}


def unrolled_cells(encoder) -> list[nn.Module]:
    """One cell per layer of the unidirectional :class:`RecurrentEncoder` ``encoder``, sharing its weights."""
    cells = []
    for rnn in encoder.forward_rnns:
        kind = CELL_OF[type(rnn)]
        extra = {"nonlinearity": rnn.nonlinearity} if kind is nn.RNNCell else {}
        cell = kind(rnn.input_size, rnn.hidden_size, **extra)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            setattr(cell, name, getattr(rnn, f"{name}_l0"))  # the same Parameter: gradients reach the model
        cells.append(cell)
    return cells


def state_gradient_norms(model, inputs: torch.Tensor, loss_fn: Callable[[torch.Tensor], torch.Tensor]
                         ) -> tuple[torch.Tensor, float]:
    """``(‖∂L/∂h_t‖ for t = 1..T averaged over the batch, (steps,), loss)`` for ``model`` (a :class:`MemoryModel`:
    ``encoder`` and ``readout``) on ``inputs`` ``(batch, steps, features)``; ``loss_fn(outputs)`` is the loss of
    the model's outputs. The model's parameters get no gradient from this."""
    cells = unrolled_cells(model.encoder)
    states: list = [None] * len(cells)
    top = []
    for t in range(inputs.size(1)):
        x = inputs[:, t]
        for i, cell in enumerate(cells):
            if i > 0:
                x = model.encoder.dropout(x.unsqueeze(1)).squeeze(1)
            states[i] = cell(x, states[i])
            x = states[i][0] if isinstance(states[i], tuple) else states[i]
        top.append(x)
    loss = loss_fn(model.readout(torch.stack(top, dim=1)))
    gradients = torch.autograd.grad(loss, top)
    return torch.stack([g.norm(dim=-1).mean() for g in gradients]).detach(), float(loss.detach())


def flow_ratio(norms: torch.Tensor) -> float:
    """``‖∂L/∂h_1‖ / ‖∂L/∂h_T‖``: the share of the gradient at the last step that reaches the first."""
    last = float(norms[-1])
    return float(norms[0]) / last if last > 0 else float("nan")
