"""Dynamic int8 quantization of a trained model for faster CPU prediction (``quantize=true``).

Why dynamic: the weights of the recurrent and linear layers are stored as int8 once, and activations are
quantized on the fly at each call, so no calibration data is needed and any checkpoint can be quantized at
load time. Matrix multiplies are the cost of these models, and int8 kernels make them faster on the CPU; the
price is a small change in the scores. torch's dynamic quantized kernels exist for the CPU only.

What is quantized (torch has dynamic versions of exactly these): ``nn.Linear``, ``nn.LSTM``, ``nn.GRU``,
``nn.LSTMCell``, ``nn.GRUCell``, ``nn.RNNCell``. What stays float: ``nn.RNN`` (the ``rnn`` encoder cell; torch
has no dynamic quantized version), embeddings (a lookup, no multiply to speed up) and the CRF's transition
Parameters. Embeddings staying float also keeps ``next(model.parameters())`` working, which the tasks use
to find the model's device. A tied output layer (``tie_embeddings``) gets its own int8 copy of the matrix;
the target embedding it shared keeps its float weights.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from nlpseq.errors import NlpseqError

QUANTIZED_TYPES: set[type[nn.Module]] = {nn.Linear, nn.LSTM, nn.GRU, nn.LSTMCell, nn.GRUCell, nn.RNNCell}


def quantize_dynamic(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with its :data:`QUANTIZED_TYPES` layers quantized to int8, in eval mode, on the CPU.

    ``model`` itself is left unchanged. Raises :class:`NlpseqError` when ``model`` is on another device.
    """
    devices = {p.device.type for p in model.parameters()} | {b.device.type for b in model.buffers()}
    if devices - {"cpu"}:
        raise NlpseqError("quantize=true runs on the CPU only; use device=cpu")
    with warnings.catch_warnings():
        # torch.ao.quantization warns that it will move to torchao; the API still works in this torch.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        quantized = torch.ao.quantization.quantize_dynamic(model, QUANTIZED_TYPES, dtype=torch.qint8)
    return quantized.eval()
