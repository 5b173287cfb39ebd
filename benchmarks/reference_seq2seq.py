"""Reference GRU encoder-decoder with Bahdanau attention and input feeding, in plain PyTorch.

Attention keys are projected once per batch. Greedy search is batched; beam search decodes one sentence at
a time with its hypotheses as the batch (the common simple implementation).
"""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.common import BiRNN


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
        self.out = nn.Linear(dec, tgt_vocab)
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

    def loss(self, src, src_lengths, tgt_in, tgt_out) -> torch.Tensor:
        memory, state = self.encode(src, src_lengths)
        outputs = []
        for t in range(tgt_in.size(1)):
            output, state = self.step(tgt_in[:, t], state, memory)
            outputs.append(output)
        logits = self.out(torch.stack(outputs, 1))  # one projection for all steps
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
            prev = self.out(output).argmax(1)
            out.append(prev)
            done |= (prev == eos) | (max_lens <= t + 1)
            if done.all():
                break
        rows = torch.stack(out, 1).tolist() if out else [[] for _ in range(src.size(0))]
        return [(r[:r.index(eos)] if eos in r else r)[:n] for r, n in zip(rows, max_lens.tolist())]

    @torch.no_grad()
    def beam(self, src, src_lengths, bos: int, eos: int, max_len: int, beam: int, alpha: float) -> list[list[int]]:
        """Beam search one sentence at a time; hypotheses that end leave the beam, best normalised score wins."""
        results = []
        for i in range(src.size(0)):
            n = int(src_lengths[i])
            (values, keys, mask), state = self.encode(src[i:i + 1, :n], src_lengths[i:i + 1])
            memory = (values.expand(beam, -1, -1), keys.expand(beam, -1, -1), mask.expand(beam, -1))
            hyps, scores = [[]], torch.zeros(1)
            state = (state[0], state[1])
            finished = []
            for _ in range(max_len):
                k = len(hyps)
                prev = torch.tensor([h[-1] if h else bos for h in hyps])
                output, state = self.step(prev, state, tuple(m[:k] for m in memory))
                logits = self.out(output)
                total = (scores.unsqueeze(1) + logits.log_softmax(1)).view(-1)
                top, idx = total.topk(min(beam, total.numel()))
                vocab = logits.size(1)
                parents, tokens = (idx // vocab).tolist(), (idx % vocab).tolist()
                keep, new_hyps = [], []
                for s, p, t in zip(top.tolist(), parents, tokens):
                    if t == eos:
                        finished.append((s / ((5 + len(hyps[p]) + 1) / 6) ** alpha, hyps[p]))
                    else:
                        keep.append(len(new_hyps))
                        new_hyps.append((p, hyps[p] + [t], s))
                if len(finished) >= beam or not new_hyps:
                    break
                rows = torch.tensor([p for p, _, _ in new_hyps])
                state = (state[0][rows], state[1][rows])
                hyps, scores = [h for _, h, _ in new_hyps], torch.tensor([s for _, _, s in new_hyps])
            if not finished:
                finished = [(s / ((5 + len(h)) / 6) ** alpha, h) for h, s in zip(hyps, scores.tolist())]
            results.append(max(finished, key=lambda f: f[0])[1])
        return results
