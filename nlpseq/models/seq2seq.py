"""Encoder-decoder translation model: source embedding -> BiRNN encoder -> recurrent decoder -> target vocabulary.

Bahdanau et al. (2015) with attention, Cho et al. (2014) without (``attention: none``), Luong et al. (2015)
input feeding as an option. Decoding lives in :mod:`nlpseq.decoding`; it only calls :meth:`Seq2Seq.step`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nlpseq.errors import ConfigError, check_choice
from nlpseq.modules.attention import ATTENTIONS, build_attention
from nlpseq.modules.decoder import DecoderState, Memory, RecurrentDecoder
from nlpseq.modules.encoders import CELLS, RecurrentEncoder, lengths_to_mask


def _embedding(vocab_size: int, dim: int, pad_id: int) -> nn.Embedding:
    """Uniform init with variance 1/dim (as TokenEmbedder), so tied output logits start at a sane scale."""
    embedding = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
    bound = math.sqrt(3.0 / dim)
    nn.init.uniform_(embedding.weight, -bound, bound)
    with torch.no_grad():
        embedding.weight[pad_id].zero_()
    return embedding


class Seq2Seq(nn.Module):
    """Source ids ``(batch, src_time)`` + lengths -> :class:`Memory`; then one target token per :meth:`step`.

    ``tie_embeddings`` shares the target embedding matrix with the output layer (Press & Wolf 2017). The
    output layer then reads ``embedding_dim`` features: when the decoder's hidden size differs, a bias-free
    linear map ``hidden -> embedding_dim`` is inserted before it (otherwise there is none). The output layer
    keeps its own bias in both cases.
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, embedding_dim: int, encoder: RecurrentEncoder,
                 decoder: RecurrentDecoder, pad_id: int, dropout: float = 0.0, tie_embeddings: bool = False):
        super().__init__()
        self.src_embed = _embedding(src_vocab_size, embedding_dim, pad_id)
        self.tgt_embed = _embedding(tgt_vocab_size, embedding_dim, pad_id)
        self.encoder, self.decoder = encoder, decoder
        self.pad_id, self.tgt_vocab_size = pad_id, tgt_vocab_size
        # Per element rather than locked: a target token is embedded alone at each decoding step.
        self.embedding_dropout = nn.Dropout(dropout)
        needs_map = tie_embeddings and decoder.output_size != embedding_dim
        self.pre_output = nn.Linear(decoder.output_size, embedding_dim, bias=False) if needs_map else nn.Identity()
        self.output = nn.Linear(embedding_dim if tie_embeddings else decoder.output_size, tgt_vocab_size)
        if tie_embeddings:
            self.output.weight = self.tgt_embed.weight

    def encode(self, src: torch.Tensor, lengths: torch.Tensor) -> Memory:
        """src ``(batch, src_time)``, lengths ``(batch,)`` -> the decoder's memory of the batch."""
        outputs, final = self.encoder(self.embedding_dropout(self.src_embed(src)), lengths)
        return self.decoder.memory(outputs, final, lengths_to_mask(lengths.to(src.device), src.size(1)))

    def init_state(self, memory: Memory) -> DecoderState:
        return self.decoder.init_state(memory)

    def logits(self, outputs: torch.Tensor) -> torch.Tensor:
        """Decoder outputs ``(..., hidden)`` -> scores over the target vocabulary ``(..., vocab)``."""
        return self.output(self.pre_output(outputs))

    def step(self, prev_tokens: torch.Tensor, state: DecoderState, memory: Memory, normalize: bool = True
             ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        """prev_tokens ``(batch,)`` -> log-probs ``(batch, vocab)`` (raw scores with ``normalize=False``: same
        argmax, no softmax over the vocabulary), new state, weights ``(batch, src_time)`` or None."""
        output, state, weights = self.decoder.step(self.embedding_dropout(self.tgt_embed(prev_tokens)), state, memory)
        logits = self.logits(output)
        return (logits.log_softmax(dim=-1) if normalize else logits), state, weights

    def loss(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor, tgt_out: torch.Tensor,
             label_smoothing: float = 0.0, teacher_forcing: float = 1.0) -> torch.Tensor:
        """Mean token cross-entropy over the non-pad positions of ``tgt_out`` ``(batch, tgt_time)``.

        ``tgt_in`` is ``tgt_out`` shifted right (bos first). ``teacher_forcing < 1`` is scheduled sampling
        (Bengio et al. 2015): at each step after the first, each sentence is fed its gold previous token with
        probability ``teacher_forcing`` and otherwise the model's own argmax prediction (not differentiated).
        """
        memory = self.encode(src, src_lengths)
        if teacher_forcing >= 1.0:
            logits = self.logits(self.decoder(self.embedding_dropout(self.tgt_embed(tgt_in)), memory))
        else:
            logits = self._sampled_logits(tgt_in, memory, teacher_forcing)
        return nn.functional.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=self.pad_id,
                                           label_smoothing=label_smoothing)

    def _sampled_logits(self, tgt_in: torch.Tensor, memory: Memory, teacher_forcing: float) -> torch.Tensor:
        """The step loop of scheduled sampling: ``(batch, tgt_time)`` -> logits ``(batch, tgt_time, vocab)``."""
        state = self.decoder.init_state(memory)
        prev = tgt_in[:, 0]
        logits = []
        for t in range(tgt_in.size(1)):
            if t > 0:
                gold = torch.rand(prev.shape, device=prev.device) < teacher_forcing
                prev = torch.where(gold, tgt_in[:, t], logits[-1].argmax(dim=-1))
            output, state, _ = self.decoder.step(self.embedding_dropout(self.tgt_embed(prev)), state, memory)
            logits.append(self.logits(output))
        return torch.stack(logits, dim=1)


def build_seq2seq(cfg, src_vocab_size: int, tgt_vocab_size: int, pad_id: int) -> Seq2Seq:
    """Build from the flat ``model`` config: embedding_dim, hidden_size (encoder, per direction),
    decoder_hidden_size, cell, encoder_layers, attention, attention_size, dropout, tie_embeddings,
    input_feeding; optional decoder_layers (default 1)."""
    check_choice("model.cell", cfg.cell, CELLS)
    check_choice("model.attention", cfg.attention, ATTENTIONS)
    if cfg.encoder_layers < 1 or cfg.get("decoder_layers", 1) < 1:
        raise ConfigError("model.encoder_layers and model.decoder_layers must be >= 1")
    encoder = RecurrentEncoder(cfg.embedding_dim, cfg.hidden_size, cfg.cell, cfg.encoder_layers, bidirectional=True,
                               dropout=cfg.dropout, locked_dropout=True)
    attention = build_attention(cfg.attention, cfg.decoder_hidden_size, encoder.output_size, cfg.attention_size)
    decoder = RecurrentDecoder(cfg.embedding_dim, cfg.decoder_hidden_size, encoder.output_size, attention, cfg.cell,
                               cfg.get("decoder_layers", 1), cfg.dropout, cfg.input_feeding)
    return Seq2Seq(src_vocab_size, tgt_vocab_size, cfg.embedding_dim, encoder, decoder, pad_id, cfg.dropout,
                   cfg.tie_embeddings)
