"""nlpseq: recurrent sequence models (RNN, LSTM, GRU) for NER, sentiment, translation and forecasting."""

from nlpseq.checkpoint import load

__all__ = ["load"]
__version__ = "0.1.0"
