"""What every prediction path shares: the model in eval mode, without autograd, on its own device."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from nlpseq.errors import NlpseqError
from nlpseq.runtime import pick_device


def inference_device(setting: str, quantize: bool = False) -> torch.device:
    """``device=`` of ``evaluate.py`` / ``predict.py``: as :func:`pick_device`, but int8 kernels run on the CPU
    only, so ``quantize=true`` takes ``auto`` as the CPU and refuses any other device."""
    if not quantize:
        return pick_device(setting)
    if str(setting) not in ("auto", "cpu"):
        raise NlpseqError("quantize=true runs on the CPU only; use device=cpu")
    return torch.device("cpu")


@contextmanager
def evaluating(model: nn.Module) -> Iterator[torch.device]:
    """Run the block with ``model`` in eval mode under ``torch.inference_mode``; yields the model's device.

    A model already in eval mode (a predictor's) is not walked again: that walk costs a tenth of a
    one-sentence call. A model in training mode is put back in it afterwards.
    """
    was_training = model.training
    if was_training:
        model.eval()
    try:
        with torch.inference_mode():
            yield next(model.parameters()).device
    finally:
        if was_training:
            model.train()


def given_options(settings, names: tuple[str, ...], accepted: tuple[str, ...], task: str, source: str) -> dict:
    """The settings among ``names`` that are given (not null) in ``settings`` (a config or dict); an error
    naming the task when one of them is not among the ``accepted`` options of ``task``'s predictor."""
    given = {k: settings[k] for k in names if settings.get(k) is not None}
    refused = [k for k in given if k not in accepted]
    if refused:
        offers = ", ".join(k + "=" for k in accepted) or "none of these options"
        verb = "does" if len(refused) == 1 else "do"
        raise NlpseqError(f"{source} is a {task} model: {', '.join(k + '=' for k in refused)} {verb} not apply to it "
                          f"(it takes {offers})")
    return given
