"""The ONNX graphs of an export bundle: thin ``nn.Module`` wrappers around a trained model, and their export.

Exporter: the TorchScript one (``torch.onnx.export(dynamo=False)``). The torch.export-based default decomposes
``aten.lstm`` / ``aten.gru`` into a loop over time for its shape inference, which specialises the time axis to
the example's length (torch.export raises "time = N"; torch.onnx then falls back to a draft export whose shapes
fix that length), and it exports ~10x slower (12 s against 1.3 s for the tagger). The TorchScript exporter
writes each ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` as one ONNX LSTM / GRU / RNN node, batch and time symbolic.

Padding: every graph takes the sequence lengths. The model's encoder (:class:`RecurrentEncoder`) runs its backward
direction over each sequence reversed within its own length, so that padding never reaches a real position. The
export replaces it by :class:`PackedEncoder` (``pack_padded_sequence``): each layer becomes one bidirectional ONNX
LSTM / GRU / RNN node given the lengths as ``sequence_lens``; onnxruntime then runs each direction over the real
tokens only. Same outputs (identical to the last bit on the CoNLL test set) and 7-10% faster in onnxruntime than
the model's own form exported as is (two one-direction nodes per layer and GatherElements reversing by length).
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from nlpseq.data.batching import CharBatch
from nlpseq.modules.embeddings import CharCNN
from nlpseq.modules.encoders import RecurrentEncoder, lengths_to_mask

CHAR_INPUTS = ("char_ids", "char_index")  # a CharBatch: each distinct word's characters, each token's row
CHAR_AXES = {"char_ids": {0: "words", 1: "chars"}, "char_index": {0: "batch", 1: "time"}}


class ExportCharCNN(nn.Module):
    """:class:`CharCNN` with its windows cut by ``k`` shifted slices instead of ``Tensor.unfold``: the TorchScript
    exporter cannot export ``unfold`` over a dynamic axis. The same values in the same order (window position
    major, then embedding), through the same Linear: identical results."""

    def __init__(self, cnn: CharCNN):
        super().__init__()
        self.embed, self.window, self.kernel_size, self.output_size = cnn.embed, cnn.window, cnn.kernel_size, \
            cnn.output_size

    def forward(self, chars: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """chars ``(words, chars)``, lengths ``(words,)`` -> ``(words, filters)``."""
        x = self.embed(chars)
        half = self.kernel_size // 2
        x = nn.functional.pad(x, (0, 0, half, half))
        n = chars.size(1)
        windows = torch.cat([x[:, i:i + n] for i in range(self.kernel_size)], dim=2)  # (words, chars, k * dim)
        h = self.window(windows)
        h = h.masked_fill(~lengths_to_mask(lengths, h.size(1)).unsqueeze(2), float("-inf"))
        return h.max(dim=1).values


class PackedEncoder(nn.Module):
    """:class:`RecurrentEncoder` as one ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` (all layers, both directions) over a
    packed batch, for export: each layer becomes one bidirectional ONNX node that reads the lengths
    (``sequence_lens``), in place of two one-direction nodes and the GatherElements that reverse every sequence
    within its length. The same weights, the same outputs (zero at padding) and final states; in eval mode only
    (no dropout between layers)."""

    def __init__(self, encoder: RecurrentEncoder):
        super().__init__()
        first = encoder.forward_rnns[0]
        options = {"nonlinearity": first.nonlinearity} if isinstance(first, nn.RNN) else {}
        self.hidden_size, self.bidirectional = encoder.hidden_size, encoder.bidirectional
        self.rnn = type(first)(first.input_size, encoder.hidden_size, num_layers=encoder.layers, batch_first=True,
                               bidirectional=encoder.bidirectional, **options)
        weights = {}
        for i in range(encoder.layers):
            sides = [(encoder.forward_rnns[i], "")] + ([(encoder.backward_rnns[i], "_reverse")]
                                                       if encoder.bidirectional else [])
            for rnn, suffix in sides:  # a one-layer module's weight_ih_l0 is layer i's weight_ih_l{i}[_reverse]
                weights.update({name.replace("_l0", f"_l{i}") + suffix: w for name, w in rnn.state_dict().items()})
        self.rnn.load_state_dict(weights)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`RecurrentEncoder.forward`: ``(batch, time, input)`` -> outputs and final states."""
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = nn.utils.rnn.pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=x.size(1))
        last = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, self.hidden_size)
        final = out[..., :self.hidden_size].gather(1, last).squeeze(1)
        if self.bidirectional:
            final = torch.cat([final, out[:, 0, self.hidden_size:]], dim=-1)
        return out, final


def exportable(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode, its character CNN replaced by :class:`ExportCharCNN` and its recurrent
    encoders (the word encoder, a character LSTM's) by :class:`PackedEncoder`."""
    model = copy.deepcopy(model).eval()
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, CharCNN):
                setattr(module, name, ExportCharCNN(child))
            elif isinstance(child, RecurrentEncoder):
                setattr(module, name, PackedEncoder(child))
    return model


def _chars(char_ids: torch.Tensor | None, char_index: torch.Tensor | None) -> CharBatch | None:
    return None if char_ids is None else CharBatch(char_ids, char_index)


class TaggerGraph(nn.Module):
    """words ``(batch, time)``, lengths ``(batch,)`` [, char_ids, char_index] -> emissions ``(batch, time, tags)``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, words, lengths, char_ids=None, char_index=None):
        return self.model.emissions(words, _chars(char_ids, char_index), lengths)


class ClassifierGraph(nn.Module):
    """words ``(batch, time)``, lengths ``(batch,)`` [, char_ids, char_index] -> logits ``(batch, classes)``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, words, lengths, char_ids=None, char_index=None):
        return self.model(words, lengths, _chars(char_ids, char_index))


def memory_names(model: nn.Module) -> tuple[str, ...]:
    """What a decoder step reads from the encoder: values and attention keys, or the summary without attention."""
    return ("values", "keys") if model.decoder.attention is not None else ("summary",)


def state_names(model: nn.Module) -> tuple[str, ...]:
    """The decoder state's tensors: hidden ``(batch, layers, hidden)``, LSTM cells, the input-feeding output."""
    decoder = model.decoder
    return ("hidden",) + (("cell",) if decoder.cell == "lstm" else ()) + (
        ("attentional",) if decoder.input_feeding else ())


class EncoderGraph(nn.Module):
    """src ``(batch, src_time)``, src_lengths ``(batch,)`` -> memory (:func:`memory_names`; values and keys
    ``(batch, src_time, ·)``, summary ``(batch, enc)``) then the initial state (:func:`state_names`)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, src, src_lengths):
        memory = self.model.encode(src, src_lengths)
        state = self.model.init_state(memory)
        out = [memory.values, memory.keys] if self.model.decoder.attention is not None else [memory.summary]
        return tuple(out + [t for t in state if t is not None])


class DecoderStepGraph(nn.Module):
    """prev_tokens ``(rows,)``, the state, the memory [, mask ``(rows, src_time)`` bool] -> logits and log-probs
    ``(rows, vocab)``, then the new state (same names, ``new_`` prefixed)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.states, self.memories = state_names(model), memory_names(model)

    def forward(self, prev_tokens, *tensors):
        from nlpseq.modules.decoder import DecoderState, Memory

        given = dict(zip(self.states + self.memories + ("mask",), tensors))
        state = DecoderState(given["hidden"], given.get("cell"), given.get("attentional"))
        mask = given.get("mask")
        memory = Memory(given.get("values"), given.get("keys"), mask, given.get("summary"))
        logits, new_state, _ = self.model.step(prev_tokens, state, memory, normalize=False)
        return (logits, logits.log_softmax(dim=-1)) + tuple(t for t in new_state if t is not None)


@dataclass
class GraphSpec:
    """One graph to export: its module, example inputs (a padded batch), names and symbolic axes."""

    file: str
    module: nn.Module
    example: tuple[torch.Tensor, ...]
    inputs: list[str]
    outputs: list[str]
    axes: dict[str, dict[int, str]] = field(default_factory=dict)

    def __post_init__(self):
        # The exporter puts the module back in the mode it found it in, recursively: a wrapper left in training
        # mode (the default of a new module) would turn the model's dropout on after the export.
        self.module.eval()

    def manifest(self) -> dict:
        return {"file": self.file, "inputs": self.inputs, "outputs": self.outputs}


def export_graph(spec: GraphSpec, directory: Path, opset: int) -> Path:
    """Write ``spec`` as ``directory / spec.file`` (weights inside the file) and return its path."""
    path = directory / spec.file
    axes = {name: a for name, a in spec.axes.items() if name in spec.inputs or name in spec.outputs}
    with warnings.catch_warnings(), _without_known_cpp_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export (see the module docstring for why it is
        # used); its tracer also warns about Python values it records as constants, which here are sizes of weights.
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(spec.module, spec.example, str(path), dynamo=False, input_names=spec.inputs,
                              output_names=spec.outputs, dynamic_axes=axes, opset_version=int(opset),
                              do_constant_folding=True)
    return path


# pack_padded_sequence's placeholders, removed from the graph by a later pass; the check batch shows them harmless.
KNOWN_CPP_WARNINGS = ("shape inference of prim::PadPacked type is missing",
                      "shape inference of prim::PackPadded type is missing")


@contextlib.contextmanager
def _without_known_cpp_warnings():
    """Hold back the C++ exporter's :data:`KNOWN_CPP_WARNINGS` (written to file descriptor 2, out of reach of
    :mod:`warnings`); whatever else it writes there is passed on."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines(keepends=True):
                if not any(known in line for known in KNOWN_CPP_WARNINGS):
                    sys.stderr.write(line)
