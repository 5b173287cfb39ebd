"""What every prediction path shares: the model in eval mode, without autograd, on its own device."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from nlpseq.data.io import STDIN
from nlpseq.errors import DataError, NlpseqError, NotOffered
from nlpseq.runtime import pick_device
from nlpseq.threads import set_threads


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


def script_predictor(cfg, common: tuple[str, ...], kind: str) -> tuple[object, dict]:
    """``evaluate.py`` / ``predict.py``: the predictor of ``cfg.checkpoint`` (on ``cfg.device``, int8 with
    ``cfg.quantize``, with ``cfg.num_threads`` torch threads; ``cfg.output`` checked writable first) and the
    task options given in ``cfg``: its keys outside ``common``, checked against the predictor's
    ``<kind>_options``."""
    import nlpseq
    from nlpseq.cli import required_checkpoint, writable_output

    checkpoint = required_checkpoint(cfg)
    writable_output(cfg.output)
    # the choice is logged for debugging only: evaluate.py and predict.py print results, and nothing else
    set_threads(cfg.get("num_threads", "auto"), key="num_threads", level=logging.DEBUG)
    quantize = bool(cfg.get("quantize", False))
    predictor = nlpseq.load(checkpoint, device=inference_device(cfg.device, quantize), quantize=quantize)
    options = given_options(cfg, tuple(k for k in cfg if k not in common), getattr(predictor, f"{kind}_options"),
                            predictor.task.name, checkpoint)
    return predictor, options


class PredictorBase:
    """What every task's predictor shares: a clear error, naming the model's task and what it offers, for a
    method (``nlpseq.load(ner).translate``) or an option (``.predict(texts, beam=5)``) its task does not have.

    A predictor sets ``task`` (with its ``name``), ``offers`` (its methods as a user calls them) and the options
    its ``predict`` (``prediction_options``) and ``evaluate.py`` (``evaluation_options``) take.
    """

    offers: tuple[str, ...] = ("predict(texts)",)
    prediction_options: tuple[str, ...] = ()
    evaluation_options: tuple[str, ...] = ()
    reads_lines = True  # predict.py input: one text per line (interactive=true works); else read_inputs parses it
    text_header = ""  # what predict.py format=text prints before the first result

    def read_inputs(self, path: str) -> list[str]:
        """``predict.py input=FILE`` (``-``: standard input) as the ``predict`` input: one text per line; an empty
        input or line is a :class:`DataError` naming it."""
        from nlpseq.cli import read_input_lines

        lines = read_input_lines(path)
        if not lines:
            raise DataError(STDIN if path == "-" else path, None, "is empty: nothing to predict")
        for source, number, text in lines:
            if not text.strip():
                raise DataError(source, number, "is an empty line; expected one sentence per line")
        return [text for _, _, text in lines]

    def report(self, examples, output: str | None, **options) -> str:
        """The printed report of :meth:`score` (``score`` is each task's: the scores and this report)."""
        return self.score(examples, output, **options)[1]

    def check_options(self, options: dict, accepted: tuple[str, ...]) -> dict:
        """The ``options`` given (not None); an :class:`NlpseqError` for one that is not ``accepted``."""
        return given_options(options, tuple(options), accepted, self.task.name, "this")

    def __getattr__(self, name: str):
        """Called only for a name the predictor lacks: :class:`NotOffered` (an ``AttributeError``)."""
        task = self.__dict__.get("task")
        if name.startswith("_") or task is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        raise NotOffered(f"this is a {task.name} model: it has no {name}(); it offers {' and '.join(self.offers)}")
