"""A recurrent decoder with optional attention and input feeding, advanced one target token at a time.

The decoder is stateless: :meth:`RecurrentDecoder.step` takes the previous token's embedding, a
:class:`DecoderState` and the encoder's :class:`Memory`, and returns the step's output with the new state.
The same call serves teacher forcing (:meth:`RecurrentDecoder.forward` loops it over the gold targets),
scheduled sampling, greedy and beam search. Every tensor in a state or memory has the batch as its first
dimension, so :func:`reorder_state` (``index_select`` along dim 0) reorders beam hypotheses or expands a
batch to ``batch * beam`` rows.

One step (Luong et al. 2015, the order Joey NMT uses for both attention kinds)::

    h_t = RNN([y_{t-1}; a_{t-1}], h_{t-1})      # a_{t-1} only with input feeding
    c_t = attention(h_t, encoder outputs)        # or the encoder summary when attention is None (Cho et al. 2014)
    a_t = dropout(tanh(W [h_t; c_t]))            # the output, size hidden; fed back with input feeding
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

CELL_TYPES = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}


class Memory(NamedTuple):
    """What the decoder reads from the encoder; built once per batch by :meth:`RecurrentDecoder.memory`."""

    values: torch.Tensor  # (batch, src_time, enc): encoder outputs, zero at padding
    keys: torch.Tensor | None  # (batch, src_time, key): values projected once by the attention; None without one
    mask: torch.Tensor  # (batch, src_time) bool, true on real source positions
    summary: torch.Tensor  # (batch, enc): encoder final states


class DecoderState(NamedTuple):
    """The recurrent state between steps; ``None`` fields are unused by this decoder's configuration."""

    hidden: torch.Tensor  # (batch, layers, hidden)
    cell: torch.Tensor | None  # (batch, layers, hidden): LSTM memory cells; None for rnn / gru
    attentional: torch.Tensor | None  # (batch, hidden): the previous output a_{t-1}; None without input feeding


def reorder_state(state: tuple, index: torch.Tensor) -> tuple:
    """Rows ``index`` ``(new_batch,)`` of every tensor of a (named) tuple along dim 0; ``None`` stays ``None``.

    Works for :class:`DecoderState` and :class:`Memory` alike: beam search uses it to follow the surviving
    hypotheses and to expand the memory to ``batch * beam`` rows.
    """
    items = [None if t is None else t.index_select(0, index) for t in state]
    return type(state)(*items) if hasattr(state, "_fields") else tuple(items)


def _stack_layers(states: list[torch.Tensor]) -> torch.Tensor:
    """Per-layer ``(batch, hidden)`` -> ``(batch, layers, hidden)``; one layer is a view, not a copy."""
    return states[0].unsqueeze(1) if len(states) == 1 else torch.stack(states, dim=1)


class RecurrentDecoder(nn.Module):
    """Embedded previous tokens + :class:`Memory` -> attentional vectors ``(batch, hidden)`` one step at a time.

    ``attention`` is a :mod:`nlpseq.modules.attention` module built with ``query_size=hidden_size`` and
    ``key_size=encoder_size``, or None for the plain encoder-decoder whose context at every step is the
    encoder summary. ``dropout`` applies between stacked layers and to each output (per element: a locked
    mask would have to be carried in the state).
    """

    def __init__(self, embedding_size: int, hidden_size: int, encoder_size: int, attention: nn.Module | None = None,
                 cell: str = "gru", layers: int = 1, dropout: float = 0.0, input_feeding: bool = True):
        super().__init__()
        if cell not in CELL_TYPES:
            raise ValueError(f"cell must be one of {sorted(CELL_TYPES)}, got {cell!r}")
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        if attention is not None and attention.context_size != encoder_size:
            raise ValueError(f"attention reads {attention.context_size}-d values but the encoder gives {encoder_size}")
        self.cell, self.layers, self.hidden_size = cell, layers, hidden_size
        self.input_feeding, self.attention = input_feeding, attention
        self.output_size = hidden_size
        first = embedding_size + (hidden_size if input_feeding else 0)
        self.cells = nn.ModuleList(CELL_TYPES[cell](first if i == 0 else hidden_size, hidden_size)
                                   for i in range(layers))
        # The initial hidden state of every layer is tanh(W summary) (Bahdanau et al. 2015, Joey NMT's "bridge").
        self.bridge = nn.Linear(encoder_size, layers * hidden_size)
        self.combine = nn.Linear(hidden_size + encoder_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def memory(self, encoder_outputs: torch.Tensor, encoder_final: torch.Tensor, mask: torch.Tensor) -> Memory:
        """outputs ``(batch, src_time, enc)``, final ``(batch, enc)``, mask ``(batch, src_time)`` -> Memory.

        The attention keys are projected here, once per batch, not at every step.
        """
        keys = self.attention.project_keys(encoder_outputs) if self.attention is not None else None
        return Memory(encoder_outputs, keys, mask, encoder_final)

    def init_state(self, memory: Memory) -> DecoderState:
        """The state before the first target token: hidden from the encoder summary, a_0 = 0, LSTM cells 0."""
        batch = memory.summary.size(0)
        hidden = torch.tanh(self.bridge(memory.summary)).view(batch, self.layers, self.hidden_size)
        cell = torch.zeros_like(hidden) if self.cell == "lstm" else None
        feed = hidden.new_zeros(batch, self.hidden_size) if self.input_feeding else None
        return DecoderState(hidden, cell, feed)

    def step(self, prev_embedded: torch.Tensor, state: DecoderState, memory: Memory
             ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        """prev_embedded ``(batch, emb)`` -> output ``(batch, hidden)``, new state, weights ``(batch, src_time)``.

        The weights are None without attention.
        """
        x = torch.cat([prev_embedded, state.attentional], dim=-1) if self.input_feeding else prev_embedded
        hiddens, cells = [], []
        for i, rnn in enumerate(self.cells):
            if i > 0:
                x = self.dropout(x)
            if self.cell == "lstm":
                h, c = rnn(x, (state.hidden[:, i], state.cell[:, i]))
                cells.append(c)
            else:
                h = rnn(x, state.hidden[:, i])
            hiddens.append(h)
            x = h
        if self.attention is not None:
            context, weights = self.attention(x, memory.keys, memory.values, memory.mask)
        else:
            context, weights = memory.summary, None
        output = self.dropout(torch.tanh(self.combine(torch.cat([x, context], dim=-1))))
        new_state = DecoderState(_stack_layers(hiddens), _stack_layers(cells) if cells else None,
                                 output if self.input_feeding else None)
        return output, new_state, weights

    def forward(self, embedded_targets: torch.Tensor, memory: Memory,
                state: DecoderState | None = None) -> torch.Tensor:
        """Teacher forcing: ``(batch, tgt_time, emb)`` -> outputs ``(batch, tgt_time, hidden)``.

        ``state`` defaults to :meth:`init_state`. Outputs at target padding are computed like any other
        (the loss ignores them): the loop cannot stop early for one sentence.
        """
        state = self.init_state(memory) if state is None else state
        outputs = []
        for t in range(embedded_targets.size(1)):
            output, state, _ = self.step(embedded_targets[:, t], state, memory)
            outputs.append(output)
        return torch.stack(outputs, dim=1)
