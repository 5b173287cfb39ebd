"""Segment-wise recurrent forecaster (SegRNN, Lin et al. 2023) on the shared :class:`RecurrentEncoder`.

The input window is cut into segments of ``segment_length`` steps; each segment is embedded by a linear layer and
a ReLU and the RNN reads the segments (``input_length / segment_length`` steps instead of ``input_length``). All
horizon segments are then decoded in parallel: one RNN step from the encoder's final state, whose input is the
segment's position embedding (with the channel's embedding beside it), and a linear layer maps that step's output
to the segment's values. ``segment_length=1`` is the point-wise recurrent model.

``channel_independent``: every variable is its own series through the same weights (the batch grows by the number
of channels), as in SegRNN and PatchTST; otherwise a segment of all variables is one input vector.
``instance_norm``: each window's last value (``last``) or mean (``mean``) is subtracted from it and added back to
the forecast, which removes the level shift between training and test years.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nlpseq.errors import ConfigError, check_choice
from nlpseq.modules.encoders import CELLS, RecurrentEncoder

INSTANCE_NORMS = ("last", "mean", "none")


class SegmentForecaster(nn.Module):
    """``(batch, input_length, input_channels)`` -> ``(batch, horizon, len(outputs), quantiles)``.

    ``outputs`` are the indices of the input channels to forecast (all of them for ``features=M``, the target for
    ``S`` and ``MS``). ``quantiles`` is the number of forecasts per value (1: a point forecast).
    """

    def __init__(self, input_length: int, horizon: int, input_channels: int, outputs: list[int],
                 segment_length: int, hidden_size: int, cell: str = "gru", layers: int = 1, dropout: float = 0.0,
                 channel_independent: bool = True, channel_embedding: bool = True, instance_norm: str = "last",
                 quantiles: int = 1):
        super().__init__()
        check_choice("model.instance_norm", instance_norm, INSTANCE_NORMS)
        if input_length % segment_length:
            raise ConfigError(f"task.input_length={input_length} must be a multiple of model.segment_length="
                              f"{segment_length}")
        self.input_length, self.horizon, self.segment_length = input_length, horizon, segment_length
        self.input_channels, self.outputs = input_channels, list(outputs)
        self.register_buffer("output_index", torch.tensor(self.outputs, dtype=torch.long), persistent=False)
        self.channel_independent, self.instance_norm, self.quantiles = channel_independent, instance_norm, quantiles
        self.segments_out = math.ceil(horizon / segment_length)  # the last segment is cut to the horizon
        width = segment_length * (1 if channel_independent else input_channels)
        self.embed = nn.Sequential(nn.Linear(width, hidden_size), nn.ReLU())
        self.rnn = RecurrentEncoder(hidden_size, hidden_size, cell, layers, bidirectional=False, dropout=dropout)
        with_channels = channel_independent and channel_embedding
        position_size = hidden_size // 2 if with_channels else hidden_size
        self.positions = nn.Parameter(torch.randn(self.segments_out, position_size))
        self.channels = nn.Parameter(torch.randn(input_channels, hidden_size - position_size)) \
            if with_channels else None
        self.dropout = nn.Dropout(dropout)
        per_step = quantiles * (1 if channel_independent else len(self.outputs))
        self.head = nn.Linear(hidden_size, segment_length * per_step)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``(batch, input_length, input_channels)`` -> ``(batch, horizon, len(outputs), quantiles)``."""
        batch, length, channels = x.shape
        if length != self.input_length or channels != self.input_channels:
            raise ValueError(f"expected input (batch, {self.input_length}, {self.input_channels}), got "
                             f"{tuple(x.shape)}")
        level = self._level(x)  # (batch, 1, channels)
        x = x - level
        segments_in, width = length // self.segment_length, self.segment_length
        if self.channel_independent:  # (batch * channels, segments, width)
            seq = x.transpose(1, 2).reshape(batch * channels, segments_in, width)
        else:  # (batch, segments, width * channels)
            seq = x.reshape(batch, segments_in, width * channels)
        _, states = self.rnn.run(self.embed(seq))
        out, _ = self.rnn.run(self._decoder_inputs(batch), [_repeat_each(s, self.segments_out) for s in states])
        y = self.head(self.dropout(out.squeeze(1)))  # (rows * segments_out, width * per_step)
        steps = self.segments_out * width
        if self.channel_independent:
            y = y.view(batch, channels, steps, self.quantiles).transpose(1, 2)[:, :, self.output_index]
        else:
            y = y.view(batch, self.segments_out, width, len(self.outputs), self.quantiles)
            y = y.reshape(batch, steps, len(self.outputs), self.quantiles)
        return y[:, :self.horizon] + level[:, :, self.output_index].unsqueeze(-1)

    def _level(self, x: torch.Tensor) -> torch.Tensor:
        """What instance normalisation subtracts: ``(batch, 1, channels)``."""
        if self.instance_norm == "last":
            return x[:, -1:].detach()
        if self.instance_norm == "mean":
            return x.mean(dim=1, keepdim=True).detach()
        return torch.zeros_like(x[:, :1])

    def _decoder_inputs(self, batch: int) -> torch.Tensor:
        """One input per (row, horizon segment): ``(rows * segments_out, 1, hidden)``, rows in encoder order."""
        positions = self.positions
        if self.channel_independent:
            positions = positions.unsqueeze(0).expand(self.input_channels, -1, -1)  # (channels, segments, size)
            if self.channels is not None:
                channels = self.channels.unsqueeze(1).expand(-1, self.segments_out, -1)
                positions = torch.cat([positions, channels], dim=-1)
        positions = positions.reshape(-1, positions.size(-1))
        return positions.repeat(batch, 1).unsqueeze(1)


def _repeat_each(state, times: int):
    """A layer's state ``(1, rows, hidden)`` (or an LSTM's pair) with each row repeated ``times`` times in place."""
    if isinstance(state, tuple):
        return tuple(s.repeat_interleave(times, dim=1) for s in state)
    return state.repeat_interleave(times, dim=1)


def build_forecaster(model_cfg, input_length: int, horizon: int, input_channels: int, outputs: list[int]
                     ) -> SegmentForecaster:
    """Build from the ``model`` config (``nlpseq/conf/model/segrnn.yaml``) and the task's window and channels."""
    check_choice("model.cell", model_cfg.cell, CELLS)
    quantiles = model_cfg.get("quantiles")
    return SegmentForecaster(input_length, horizon, input_channels, outputs, int(model_cfg.segment_length),
                             int(model_cfg.hidden_size), model_cfg.cell, int(model_cfg.layers),
                             float(model_cfg.dropout), bool(model_cfg.channel_independent),
                             bool(model_cfg.channel_embedding), model_cfg.instance_norm,
                             len(quantiles) if quantiles else 1)
