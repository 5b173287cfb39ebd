"""The long-memory probe: a unidirectional :class:`RecurrentEncoder` and a linear head, nothing else, so that what it
remembers is the cell's doing.

``per_step``: the head reads every step (copy memory emits a symbol per step); otherwise only the last step
(adding: one number; temporal order: one class). ``forget_bias`` starts an LSTM's forget gates at that bias
(Gers et al. 2000; Jozefowicz et al. 2015 recommend 1), and ``recurrent_scale`` multiplies every recurrent
weight matrix after initialisation: above 1 it makes a tanh RNN's gradients explode, the case clipping cures.
"""

from __future__ import annotations

import torch
from torch import nn

from nlpseq.modules.encoders import RecurrentEncoder


class MemoryModel(nn.Module):
    """``(batch, steps, input_size)`` -> ``(batch, steps, outputs)`` with ``per_step``, else ``(batch, outputs)``."""

    def __init__(self, input_size: int, hidden_size: int, outputs: int, cell: str = "lstm", layers: int = 1,
                 per_step: bool = False, forget_bias: float = 1.0, recurrent_scale: float = 1.0):
        super().__init__()
        self.encoder = RecurrentEncoder(input_size, hidden_size, cell, layers, bidirectional=False)
        self.head = nn.Linear(hidden_size, outputs)
        self.per_step = per_step
        with torch.no_grad():
            for rnn in self.encoder.forward_rnns:
                if cell == "lstm":  # gate order: input, forget, cell, output
                    rnn.bias_ih_l0[hidden_size:2 * hidden_size].fill_(forget_bias)
                    rnn.bias_hh_l0[hidden_size:2 * hidden_size].zero_()
                rnn.weight_hh_l0.mul_(recurrent_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states, _ = self.encoder.run(x)
        return self.readout(states)

    def readout(self, states: torch.Tensor) -> torch.Tensor:
        """The head on the top layer's states ``(batch, steps, hidden)`` (every step, or the last)."""
        return self.head(states if self.per_step else states[:, -1])


def build_memory_model(model_cfg, input_size: int, outputs: int, per_step: bool) -> MemoryModel:
    """Build from the ``model`` config (``nlpseq/conf/model/memory.yaml``) and the problem's sizes."""
    return MemoryModel(input_size, int(model_cfg.hidden_size), outputs, model_cfg.cell, int(model_cfg.layers),
                       per_step, float(model_cfg.forget_bias), float(model_cfg.recurrent_scale))
