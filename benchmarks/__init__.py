"""Plain-PyTorch reference models for ``scripts/benchmark.py``.

Each reference has the same architecture and sizes as the nlpseq model it is timed against, written as
the fastest *simple* implementation known on a CPU: ``nn.LSTM`` / ``nn.GRU`` over padded batches (packed
sequences push ``nn.LSTM`` off its oneDNN kernel), the backward direction run over each sentence reversed
within its own length, one dropout mask per sequence, ``Adam(fused=True)``, and batches of sentences of
similar length. They are not used by nlpseq itself.
"""
