"""The NumPy side of the ONNX runtime: batching, Viterbi, entity spans, greedy and beam search. No torch.

Each function mirrors its PyTorch twin step for step (same order of operations, float32, first index on ties),
so that an exported model predicts what the checkpoint predicts: :func:`length_batches` is
``bucket_batches(shuffle=False)``, :func:`char_batch` ``distinct_characters``, :func:`viterbi`
``ConditionalRandomField.viterbi_tags``, :func:`entity_spans` seqeval's ``get_entities`` and the searches those
of :mod:`nlpseq.decoding`, over a ``step(prev, state, memory) -> (logits, log_probs, state)`` callable whose
state and memory are dicts of arrays with the batch first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Arrays = dict[str, np.ndarray]
Step = Callable[[np.ndarray, Arrays, Arrays], tuple[np.ndarray, np.ndarray, Arrays]]


def length_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None) -> list[list[int]]:
    """Indices longest first, cut into batches of ``batch_size`` (and, with ``max_tokens``, of at most that many
    padded tokens), as ``bucket_batches(..., shuffle=False)``."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    if not max_tokens:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    groups, current = [], []
    for i in order:  # longest first: the first of a group sets its padded width
        if current and lengths[current[0]] * (len(current) + 1) > max_tokens:
            groups.append(current)
            current = []
        current.append(i)
    groups += [current] if current else []
    return [g[i:i + batch_size] for g in groups for i in range(0, len(g), batch_size)]


def pad(seqs: Sequence[Sequence[int]], value: int = 0) -> np.ndarray:
    """Id lists -> ``(len(seqs), longest)`` int64, right-padded with ``value``."""
    out = np.full((len(seqs), max((len(s) for s in seqs), default=0)), value, dtype=np.int64)
    for row, s in zip(out, seqs):
        row[:len(s)] = s
    return out


def char_batch(words: Sequence[Sequence[Sequence[int]]], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Character ids per word per sentence -> ``char_ids`` ``(distinct words, chars)`` (each distinct character
    sequence once) and ``char_index`` ``(batch, time)`` (each token's row; 0 at padding)."""
    rows: dict[tuple[int, ...], int] = {}
    index = [[rows.setdefault(tuple(w), len(rows)) for w in s] for s in words]
    return pad(list(rows) or [[pad_id]], pad_id), pad(index, 0)


def viterbi(emissions: np.ndarray, lengths: np.ndarray, transitions: np.ndarray, start: np.ndarray,
            end: np.ndarray) -> list[list[int]]:
    """Best tag path of each sentence, trimmed to its length: emissions ``(batch, time, tags)``, lengths
    ``(batch,)``, transitions ``(from, to)``, start and end ``(tags,)`` (disallowed moves already at -1e4)."""
    batch, time, n = emissions.shape
    score = start + emissions[:, 0]
    keep = np.broadcast_to(np.arange(n), (batch, n))
    pointers = []
    for t in range(1, time):
        candidates = score[:, :, None] + transitions  # (batch, from, to)
        idx = candidates.argmax(axis=1)
        best = np.take_along_axis(candidates, idx[:, None, :], axis=1)[:, 0]
        on = (t < lengths)[:, None]
        score = np.where(on, best + emissions[:, t], score)
        pointers.append(np.where(on, idx, keep))  # past the end: stay on the same tag
    tag = (score + end).argmax(axis=1)
    path = [tag]
    for idx in reversed(pointers):
        tag = np.take_along_axis(idx, tag[:, None], axis=1)[:, 0]
        path.append(tag)
    paths = np.stack(path[::-1], axis=1)
    return [paths[i, :int(k)].tolist() for i, k in enumerate(lengths)]


_ENDS = {("B", "B"), ("B", "S"), ("B", "O"), ("I", "B"), ("I", "S"), ("I", "O")}
_STARTS = {("E", "E"), ("E", "I"), ("S", "E"), ("S", "I"), ("O", "E"), ("O", "I")}


def entity_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """``(type, first token, last token)`` of each entity: seqeval's ``get_entities`` (prefix tags, IOB1 / IOB2 /
    IOBES), rewritten because importing seqeval imports scikit-learn (2.4 s)."""
    prev_tag, prev_type, begin, chunks = "O", "", 0, []
    for i, chunk in enumerate([*tags, "O"]):
        tag, kind = chunk[0], chunk[1:].split("-", maxsplit=1)[-1] or "_"
        if prev_tag in ("E", "S") or (prev_tag, tag) in _ENDS or (prev_tag not in ("O", ".") and prev_type != kind):
            chunks.append((prev_type, begin, i - 1))
        if tag in ("B", "S") or (prev_tag, tag) in _STARTS or (tag not in ("O", ".") and prev_type != kind):
            begin = i
        prev_tag, prev_type = tag, kind
    return chunks


def take(arrays: Arrays, rows: np.ndarray) -> Arrays:
    """Rows ``rows`` of every array (batch first): drop finished sentences, expand or reorder beams."""
    return {k: v[rows] for k, v in arrays.items()}


def greedy_search(step: Step, memory: Arrays, state: Arrays, bos: int, eos: int, max_lengths: np.ndarray
                  ) -> list[list[int]]:
    """The most probable token at each step, for the whole batch; output ids without bos / eos. As in
    :func:`nlpseq.decoding.greedy_search`, finished rows leave the batch once an eighth of those left are done."""
    batch = len(max_lengths)
    steps = int(max_lengths.max()) if batch else 0
    out = np.zeros((batch, steps), dtype=np.int64)
    rows, limits = np.arange(batch), max_lengths
    prev = np.full(batch, bos, dtype=np.int64)
    finished = limits <= 0
    lengths = np.zeros(batch, dtype=np.int64)  # tokens produced, eos included
    ended = np.zeros(batch, dtype=bool)  # finished by eos, not by the length limit
    for t in range(steps):
        done = int(finished.sum())
        if done == finished.size:
            break
        if done and done * 8 >= finished.size:
            keep = np.flatnonzero(~finished)
            rows, prev, limits, finished = rows[keep], prev[keep], limits[keep], finished[keep]
            memory, state = take(memory, keep), take(state, keep)
        logits, _, state = step(prev, state, memory)
        prev = logits.argmax(axis=-1)
        out[rows, t] = prev
        live = ~finished
        lengths[rows] += live
        new_end = live & (prev == eos)
        ended[rows] |= new_end
        finished = finished | new_end | (lengths[rows] >= limits)
    keep_lengths = lengths - ended
    return [out[i, :keep_lengths[i]].tolist() for i in range(batch)]


def gnmt_penalty(lengths: np.ndarray, alpha: float) -> np.ndarray:
    """``((5 + length) / 6) ** alpha`` in float32, as :func:`nlpseq.decoding.gnmt_penalty`."""
    return ((np.float32(5.0) + lengths.astype(np.float32)) / np.float32(6.0)) ** np.float32(alpha)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` largest of each row ``(rows, columns)``, largest first (lower index on ties)."""
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -values), axis=1)
    return np.take_along_axis(part, order, axis=1)


def beam_search(step: Step, memory: Arrays, state: Arrays, bos: int, eos: int, beam: int, max_lengths: np.ndarray,
                length_penalty: float = 0.0) -> list[list[int]]:
    """:func:`nlpseq.decoding.beam_search`: ``batch * beam`` rows, row ``b * beam + k`` hypothesis ``k`` of
    sentence ``b``; a finished hypothesis is extended by eos at no cost; the best score divided by
    :func:`gnmt_penalty` wins. Output ids without bos / eos."""
    batch = len(max_lengths)
    rows = batch * beam
    expand = np.repeat(np.arange(batch), beam)
    memory, state = take(memory, expand), take(state, expand)
    max_lengths = np.repeat(max_lengths, beam)
    scores = np.full((batch, beam), -np.inf, dtype=np.float32)
    scores[:, 0] = 0.0  # one live hypothesis at first, or the beam would fill with copies of the same tokens
    prev = np.full(rows, bos, dtype=np.int64)
    finished = max_lengths <= 0
    lengths = np.zeros(rows, dtype=np.int64)
    ended = np.zeros(rows, dtype=bool)
    offset = np.arange(batch)[:, None] * beam
    tokens, parents = [], []
    for _ in range(int(max_lengths.max()) if rows else 0):
        if finished.all():
            break
        _, log_probs, state = step(prev, state, memory)
        vocab = log_probs.shape[-1]
        log_probs[finished] = -np.inf
        log_probs[finished, eos] = 0.0
        candidates = (scores.reshape(rows, 1) + log_probs).reshape(batch, beam * vocab)
        best = top_k(candidates, beam)
        scores = np.take_along_axis(candidates, best, axis=1)
        parent = (offset + best // vocab).reshape(rows)
        prev = (best % vocab).reshape(rows)
        state = take(state, parent)
        finished, lengths, ended = finished[parent], lengths[parent], ended[parent]
        lengths += ~finished
        ended |= ~finished & (prev == eos)
        finished |= ended | (lengths >= max_lengths)
        tokens.append(prev)
        parents.append(parent)
    final = (scores.reshape(rows) / gnmt_penalty(lengths, length_penalty)).reshape(batch, beam)
    row = offset[:, 0] + final.argmax(axis=1)  # the chosen hypothesis of each sentence
    keep = lengths[row] - ended[row]
    path = []
    for t in range(len(tokens) - 1, -1, -1):  # follow the back-pointers, all sentences at once
        path.append(tokens[t][row])
        row = parents[t][row]
    path = np.stack(path[::-1], axis=1) if path else np.zeros((batch, 0), dtype=np.int64)
    return [path[i, :keep[i]].tolist() for i in range(batch)]
