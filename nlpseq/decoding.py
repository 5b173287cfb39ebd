"""Greedy and beam search over a model with ``step(prev_tokens, state, memory) -> (log_probs, state, weights)``.

``step(..., normalize=False)`` may return unnormalised scores (greedy search only needs their argmax).
Both are batched: every sentence (and, for beam search, every hypothesis) is one row of the same tensors,
so the only Python loop is over time. ``max_lengths[i]`` ``(batch,)`` is the most tokens sentence ``i``'s
output may have, eos not counted: a hypothesis that reaches it stops there without eos.

Both return ``(tokens, attention)``: per sentence the token ids without bos/eos, and the attention weights
``(len(tokens), src_len)`` of each output token over the real source positions (None without attention).
"""

from __future__ import annotations

import torch

from nlpseq.modules.decoder import reorder_state


def _finish(tokens: torch.Tensor, attention: torch.Tensor | None, lengths: torch.Tensor, ended: torch.Tensor,
            src_lengths: torch.Tensor) -> tuple[list[list[int]], list[torch.Tensor | None]]:
    """tokens ``(batch, steps)``, attention ``(batch, steps, src_time)`` or None, lengths with eos, ended with eos."""
    keep = (lengths - ended.long()).tolist()
    out_tokens, out_attention = [], []
    for i, n in enumerate(keep):
        out_tokens.append(tokens[i, :n].tolist())
        out_attention.append(None if attention is None else attention[i, :n, :int(src_lengths[i])])
    return out_tokens, out_attention


@torch.no_grad()
def greedy_search(model, memory, state, bos_id: int, eos_id: int, max_lengths: torch.Tensor
                  ) -> tuple[list[list[int]], list[torch.Tensor | None]]:
    """Pick the most probable token at every step, for the whole batch at once.

    Sentences that have finished leave the batch: once an eighth of the rows still decoding are done, the
    state and memory are cut to the unfinished rows, so later steps (the long outputs of the batch) cost
    less. Rows are independent, so the outputs equal those of decoding every row to the end.
    """
    batch, device = memory.mask.size(0), memory.mask.device
    max_lengths = max_lengths.to(device)
    src_lengths = memory.mask.sum(1)
    steps = int(max_lengths.max()) if batch else 0
    out = torch.zeros(batch, steps, dtype=torch.long, device=device)
    out_weights = None
    rows = torch.arange(batch, device=device)  # the sentence of each row still in the batch
    prev = torch.full((batch,), bos_id, dtype=torch.long, device=device)
    limits = max_lengths
    finished = limits <= 0
    lengths = torch.zeros(batch, dtype=torch.long, device=device)  # tokens produced, eos included
    ended = torch.zeros(batch, dtype=torch.bool, device=device)  # finished by eos (not by the length limit)
    taken = 0
    at: slice | torch.Tensor = slice(None)  # the rows of the full-size tensors in the batch: all (a view) until cut
    for t in range(steps):
        done = int(finished.sum())
        if done == finished.numel():
            break
        if done and done * 8 >= finished.numel():  # drop the finished rows
            keep = (~finished).nonzero().squeeze(1)
            rows, prev, limits, finished = rows[keep], prev[keep], limits[keep], finished[keep]
            memory, state = reorder_state(memory, keep), reorder_state(state, keep)
            at = rows
        scores, state, step_weights = model.step(prev, state, memory, normalize=False)
        prev = scores.argmax(dim=-1)
        out[at, t] = prev
        if step_weights is not None:
            if out_weights is None:
                out_weights = step_weights.new_zeros(batch, steps, step_weights.size(1))
            out_weights[at, t] = step_weights
        live = ~finished
        lengths[at] += live.long()
        new_end = live & (prev == eos_id)
        ended[at] |= new_end
        finished = finished | new_end | (lengths[at] >= limits)
        taken = t + 1
    return _finish(out[:, :taken], None if out_weights is None else out_weights[:, :taken], lengths, ended,
                   src_lengths)


def gnmt_penalty(lengths: torch.Tensor, alpha: float) -> torch.Tensor:
    """GNMT (Wu et al. 2016): ``((5 + length) / 6) ** alpha``; scores are divided by it. ``alpha=0`` -> 1."""
    return ((5.0 + lengths.float()) / 6.0) ** alpha


@torch.no_grad()
def beam_search(model, memory, state, bos_id: int, eos_id: int, beam_size: int, max_lengths: torch.Tensor,
                length_penalty: float = 0.0) -> tuple[list[list[int]], list[torch.Tensor | None]]:
    """Beam search over ``batch * beam`` rows, row ``b * beam + k`` holding hypothesis ``k`` of sentence ``b``.

    Each step scores every extension of every hypothesis, keeps the ``beam`` best of the ``beam * vocab`` per
    sentence (one ``topk``) and reorders the state by the rows they extend. A finished hypothesis stays in
    the beam with a fixed score: its only extension is eos with log-prob 0. Decoding stops when every
    hypothesis is finished or the longest limit is reached; the result is the hypothesis with the best
    score divided by :func:`gnmt_penalty` with ``alpha = length_penalty`` (length counting eos).
    """
    batch, device = memory.mask.size(0), memory.mask.device
    rows = batch * beam_size
    # Expanded once: the hypotheses of a sentence share its memory, and reordering within a sentence leaves
    # these rows unchanged, so only the state is reordered at each step.
    expand = torch.arange(batch, device=device).repeat_interleave(beam_size)
    memory, state = reorder_state(memory, expand), reorder_state(state, expand)
    max_lengths = max_lengths.to(device).repeat_interleave(beam_size)
    scores = torch.full((batch, beam_size), float("-inf"), device=device)
    scores[:, 0] = 0.0  # one live hypothesis at first, or the beam would fill with copies of the same tokens
    prev = torch.full((rows,), bos_id, dtype=torch.long, device=device)
    finished = max_lengths <= 0
    lengths = torch.zeros(rows, dtype=torch.long, device=device)
    ended = torch.zeros(rows, dtype=torch.bool, device=device)
    sentence_offset = (torch.arange(batch, device=device) * beam_size).unsqueeze(1)
    tokens, parents, weights = [], [], []
    for _ in range(int(max_lengths.max())):
        if finished.all():
            break
        log_probs, state, step_weights = model.step(prev, state, memory)  # (rows, vocab)
        vocab = log_probs.size(-1)
        # A finished hypothesis can only be extended by eos, at no cost (in place: no vocab-sized temporaries).
        log_probs.masked_fill_(finished.unsqueeze(1), float("-inf"))
        log_probs[:, eos_id].masked_fill_(finished, 0.0)
        candidates = (scores.view(rows, 1) + log_probs).view(batch, beam_size * vocab)
        scores, best = candidates.topk(beam_size, dim=1)
        parent = (sentence_offset + torch.div(best, vocab, rounding_mode="floor")).view(rows)
        prev = (best % vocab).view(rows)
        state = reorder_state(state, parent)
        finished, lengths, ended = finished[parent], lengths[parent], ended[parent]
        lengths += (~finished).long()
        ended |= ~finished & (prev == eos_id)
        finished |= ended | (lengths >= max_lengths)
        tokens.append(prev)
        parents.append(parent)
        weights.append(step_weights)
    final = (scores.view(rows) / gnmt_penalty(lengths, length_penalty)).view(batch, beam_size)
    row = sentence_offset.squeeze(1) + final.argmax(dim=1)  # (batch,) the chosen hypothesis of each sentence
    chosen_lengths, chosen_ended = lengths[row], ended[row]
    # Follow the back-pointers from the last step to the first, for all sentences at once.
    steps, step_weights = [], []
    for t in range(len(tokens) - 1, -1, -1):
        steps.append(tokens[t][row])
        row = parents[t][row]
        step_weights.append(None if weights[t] is None else weights[t][row])  # computed on the parent's row
    steps.reverse()
    step_weights.reverse()
    steps = torch.stack(steps, dim=1) if steps else torch.zeros(batch, 0, dtype=torch.long, device=device)
    attention = torch.stack(step_weights, dim=1) if step_weights and step_weights[0] is not None else None
    return _finish(steps, attention, chosen_lengths, chosen_ended, memory.mask.sum(1)[::beam_size])
