"""nlpseq: recurrent sequence models (RNN, LSTM, GRU) for NER, sentiment, translation and forecasting."""

from __future__ import annotations

__all__ = ["load"]
__version__ = "0.1.0"


def load(*args, **kwargs):
    """Rebuild the task's predictor from a checkpoint: :func:`nlpseq.checkpoint.load`, same arguments and result.

    nlpseq.checkpoint (and torch with it) is imported at the first call, not with the package, so that the
    torch-free parts (:mod:`nlpseq.onnx_runtime`, the errors, the tokenizers) import without torch.

    >>> tagger = nlpseq.load("runs/ner/checkpoints/best.pt")
    >>> tagger.predict(["EU rejects German call ."])
    """
    from nlpseq.checkpoint import load as load_predictor

    return load_predictor(*args, **kwargs)
