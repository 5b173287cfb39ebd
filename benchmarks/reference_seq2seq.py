"""Reference GRU encoder-decoder with Bahdanau attention and input feeding, in plain PyTorch.

With ``tie_embeddings`` the output layer shares the target embedding matrix (Press & Wolf 2017), read through a
bias-free ``decoder -> embedding`` map when the sizes differ.

Attention keys are projected once per batch. Greedy search is batched; beam search decodes one sentence at
a time with its hypotheses as the batch (the common simple implementation).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from benchmarks.common import BiRNN


class Hypothesis(NamedTuple):
    tokens: list[int]
    score: float  # summed log-probs
    finished: bool  # ended by eos or at the length limit
    length: int  # tokens, counting eos


class ReferenceSeq2Seq(nn.Module):
    """src ``(batch, src_time)`` + lengths -> target log-probs one step at a time (GRU, Bahdanau attention)."""

    def __init__(self, src_vocab: int, tgt_vocab: int, cfg):
        super().__init__()
        emb, hidden, dec = cfg.embedding_dim, cfg.hidden_size, cfg.decoder_hidden_size
        self.src_embed = nn.Embedding(src_vocab, emb, padding_idx=0)
        self.tgt_embed = nn.Embedding(tgt_vocab, emb, padding_idx=0)
        self.encoder = BiRNN(nn.GRU, emb, hidden, cfg.encoder_layers, cfg.dropout)
        self.bridge = nn.Linear(2 * hidden, dec)
        self.cell = nn.GRUCell(emb + dec, dec)
        self.query = nn.Linear(dec, cfg.attention_size, bias=False)
        self.key = nn.Linear(2 * hidden, cfg.attention_size)
        self.energy = nn.Linear(cfg.attention_size, 1, bias=False)
        self.combine = nn.Linear(dec + 2 * hidden, dec)
        tie = bool(cfg.get("tie_embeddings", False))
        self.pre_out = nn.Linear(dec, emb, bias=False) if tie and dec != emb else nn.Identity()
        self.out = nn.Linear(emb if tie else dec, tgt_vocab)
        if tie:
            self.out.weight = self.tgt_embed.weight
        self.dropout, self.label_smoothing = cfg.dropout, cfg.label_smoothing

    def encode(self, src: torch.Tensor, lengths: torch.Tensor):
        x = nn.functional.dropout(self.src_embed(src), self.dropout, self.training)
        values, final = self.encoder(x, lengths)
        mask = torch.arange(src.size(1)).unsqueeze(0) < lengths.unsqueeze(1)
        state = (torch.tanh(self.bridge(final)), values.new_zeros(src.size(0), self.cell.hidden_size))
        return (values, self.key(values), mask), state

    def step(self, prev: torch.Tensor, state, memory):
        """prev ``(batch,)`` -> attentional vector ``(batch, dec)`` and the new ``(hidden, attentional)`` state."""
        values, keys, mask = memory
        hidden, feed = state
        y = nn.functional.dropout(self.tgt_embed(prev), self.dropout, self.training)
        hidden = self.cell(torch.cat([y, feed], dim=1), hidden)
        scores = self.energy(torch.tanh(self.query(hidden).unsqueeze(1) + keys)).squeeze(2)
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=1)
        context = torch.bmm(weights.unsqueeze(1), values).squeeze(1)
        feed = nn.functional.dropout(torch.tanh(self.combine(torch.cat([hidden, context], dim=1))), self.dropout,
                                     self.training)
        return feed, (hidden, feed)

    def logits(self, output: torch.Tensor) -> torch.Tensor:
        """Attentional vectors ``(..., dec)`` -> scores over the target vocabulary ``(..., vocab)``."""
        return self.out(self.pre_out(output))

    def loss(self, src, src_lengths, tgt_in, tgt_out) -> torch.Tensor:
        memory, state = self.encode(src, src_lengths)
        outputs = []
        for t in range(tgt_in.size(1)):
            output, state = self.step(tgt_in[:, t], state, memory)
            outputs.append(output)
        logits = self.logits(torch.stack(outputs, 1))  # one projection for all steps
        return nn.functional.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=0,
                                           label_smoothing=self.label_smoothing)

    @torch.no_grad()
    def greedy(self, src, src_lengths, bos: int, eos: int, max_lens: torch.Tensor) -> list[list[int]]:
        """Batched greedy search; sentence ``i`` stops at eos or after ``max_lens[i]`` tokens."""
        memory, state = self.encode(src, src_lengths)
        prev = torch.full((src.size(0),), bos, dtype=torch.long)
        out, done = [], max_lens <= 0
        for t in range(int(max_lens.max())):
            output, state = self.step(prev, state, memory)
            prev = self.logits(output).argmax(1)
            out.append(prev)
            done |= (prev == eos) | (max_lens <= t + 1)
            if done.all():
                break
        rows = torch.stack(out, 1).tolist() if out else [[] for _ in range(src.size(0))]
        return [(r[:r.index(eos)] if eos in r else r)[:n] for r, n in zip(rows, max_lens.tolist())]

    @torch.no_grad()
    def beam(self, src, src_lengths, bos: int, eos: int, max_len: int, beam: int, alpha: float) -> list[list[int]]:
        """Beam search one sentence at a time, its live hypotheses as the batch. A finished hypothesis (eos, or
        ``max_len`` tokens) keeps its place in the beam with its score; the search ends when all are finished,
        and the best score divided by ``((5 + length) / 6) ** alpha`` (length counting eos) wins."""
        results = []
        for i in range(src.size(0)):
            n = int(src_lengths[i])
            (values, keys, mask), state = self.encode(src[i:i + 1, :n], src_lengths[i:i + 1])
            hyps = [Hypothesis([], 0.0, False, 0)]
            for _ in range(max_len):
                live = [k for k, h in enumerate(hyps) if not h.finished]
                if not live:
                    break
                rows = torch.tensor(live)
                memory = (values.expand(len(live), -1, -1), keys.expand(len(live), -1, -1), mask.expand(len(live), -1))
                prev = torch.tensor([hyps[k].tokens[-1] if hyps[k].tokens else bos for k in live])
                output, step_state = self.step(prev, (state[0][rows], state[1][rows]), memory)
                log_probs = self.logits(output).log_softmax(1)
                total = (torch.tensor([hyps[k].score for k in live]).unsqueeze(1) + log_probs).view(-1)
                top, idx = total.topk(min(beam, total.numel()))
                vocab = log_probs.size(1)
                candidates = [(h.score, k, None) for k, h in enumerate(hyps) if h.finished]
                candidates += [(s, j // vocab, j % vocab) for s, j in zip(top.tolist(), idx.tolist())]
                chosen = sorted(candidates, key=lambda c: -c[0])[:beam]
                new_hyps = []
                for score, k, token in chosen:
                    if token is None:  # finished: kept as it is
                        new_hyps.append(hyps[k])
                    else:  # the k-th live hypothesis extended by token
                        parent = hyps[live[k]].tokens
                        length = len(parent) + 1
                        tokens = parent + ([] if token == eos else [token])
                        new_hyps.append(Hypothesis(tokens, score, token == eos or length >= max_len, length))
                # State rows: the old ones, then this step's; a finished hypothesis's row is never read again.
                pick = torch.tensor([k if token is None else len(hyps) + k for _, k, token in chosen])
                state = tuple(torch.cat([old, new])[pick] for old, new in zip(state, step_state))
                hyps = new_hyps
            results.append(max(hyps, key=lambda h: h.score / ((5 + h.length) / 6) ** alpha).tokens)
        return results
