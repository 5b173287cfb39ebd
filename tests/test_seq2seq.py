"""Recurrent decoder, encoder-decoder model, greedy and beam search: padding, equivalences, training."""

from __future__ import annotations

import time

import pytest
import torch
from omegaconf import OmegaConf

from nlpseq.decoding import beam_search, greedy_search
from nlpseq.errors import ConfigError
from nlpseq.models.seq2seq import build_seq2seq
from nlpseq.modules.decoder import reorder_state

PAD, BOS, EOS, VOCAB = 0, 1, 2, 12
TINY = dict(embedding_dim=8, hidden_size=8, decoder_hidden_size=8, cell="gru", encoder_layers=1,
            attention="bahdanau", attention_size=8, dropout=0.0, tie_embeddings=False, input_feeding=True)


def make_model(seed: int = 0, eos_bias: float = 0.0, scale: float = 3.0, **overrides):
    """An untrained model in eval mode.

    At the default init a tiny untrained model is near-uniform and degenerate (every sentence gets an empty
    output or one token repeated), which would make the search equivalences hold trivially; weights scaled
    by ``scale`` give outputs that depend on the source and hypotheses that differ. ``eos_bias`` mixes in
    hypotheses that end early.
    """
    torch.manual_seed(seed)
    model = build_seq2seq(OmegaConf.create({**TINY, **overrides}), VOCAB, VOCAB, PAD).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
        model.output.bias[EOS] += eos_bias
    return model


def random_batch(lengths: list[int], seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Source ids ``(batch, max_len)`` of real symbols (3..VOCAB-1), padded with PAD."""
    gen = torch.Generator().manual_seed(seed)
    src = torch.randint(3, VOCAB, (len(lengths), max(lengths)), generator=gen)
    lengths = torch.tensor(lengths)
    src[torch.arange(src.size(1)).unsqueeze(0) >= lengths.unsqueeze(1)] = PAD
    return src, lengths


def decode(model, src, lengths, max_lengths, beam: int | None = None, alpha: float = 0.0):
    memory = model.encode(src, lengths)
    state = model.init_state(memory)
    if beam is None:
        return greedy_search(model, memory, state, BOS, EOS, max_lengths)
    return beam_search(model, memory, state, BOS, EOS, beam, max_lengths, alpha)


@torch.no_grad()
def sequence_log_prob(model, src, length: int, tokens: list[int], max_len: int) -> float:
    """Sum of log-probs of ``tokens`` (+ eos unless the length limit cut it) for one source sentence."""
    memory = model.encode(src[None, :length], torch.tensor([length]))
    state, prev, total = model.init_state(memory), BOS, 0.0
    for token in tokens + ([EOS] if len(tokens) < max_len else []):
        log_probs, state, _ = model.step(torch.tensor([prev]), state, memory)
        total, prev = total + float(log_probs[0, token]), token
    return total


@pytest.mark.parametrize("attention", ["bahdanau", "luong", "none"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
@torch.no_grad()
def test_step_with_padded_source_matches_sentence_alone(attention, cell):
    model = make_model(attention=attention, cell=cell, encoder_layers=2)
    src, lengths = random_batch([6, 3, 5])
    batch_memory, alone = model.encode(src, lengths), model.encode(src[1:2, :3], lengths[1:2])
    batch_state, alone_state = model.init_state(batch_memory), model.init_state(alone)
    prev = torch.tensor([BOS, BOS, BOS])
    for step in range(4):
        lp_batch, batch_state, w_batch = model.step(prev, batch_state, batch_memory)
        lp_alone, alone_state, w_alone = model.step(prev[1:2], alone_state, alone)
        torch.testing.assert_close(lp_batch[1:2], lp_alone, rtol=0, atol=1e-6)
        if attention != "none":
            torch.testing.assert_close(w_batch[1:2, :3], w_alone, rtol=0, atol=1e-6)
        prev = torch.tensor([3 + step, 4, 5])


@pytest.mark.parametrize("input_feeding", [True, False])
@torch.no_grad()
def test_teacher_forced_forward_equals_step_loop(input_feeding):
    model = make_model(cell="lstm", input_feeding=input_feeding, decoder_layers=2)
    src, lengths = random_batch([5, 2])
    memory = model.encode(src, lengths)
    embedded = model.tgt_embed(torch.randint(3, VOCAB, (2, 4)))
    outputs = model.decoder(embedded, memory)
    state = model.decoder.init_state(memory)
    for t in range(4):
        out, state, _ = model.decoder.step(embedded[:, t], state, memory)
        torch.testing.assert_close(outputs[:, t], out)


@pytest.mark.parametrize("attention,cell", [("bahdanau", "gru"), ("luong", "lstm"), ("none", "rnn")])
def test_beam_of_one_equals_greedy(attention, cell):
    for seed in range(3):
        model = make_model(seed, eos_bias=-0.5, attention=attention, cell=cell)
        src, lengths = random_batch([7, 3, 5, 1], seed=seed)
        max_lengths = torch.tensor([8, 6, 3, 5])
        greedy_tokens, greedy_att = decode(model, src, lengths, max_lengths)
        beam_tokens, beam_att = decode(model, src, lengths, max_lengths, beam=1)
        assert beam_tokens == greedy_tokens
        assert all(len(t) <= m for t, m in zip(greedy_tokens, max_lengths.tolist()))
        for g, b in zip(greedy_att, beam_att):
            assert (g is None) == (attention == "none") and (b is None) == (g is None)
            if g is not None:
                torch.testing.assert_close(g, b)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("attention,cell", [("bahdanau", "gru"), ("luong", "lstm"), ("none", "gru")])
def test_batched_beam_search_equals_one_sentence_at_a_time(attention, cell, alpha):
    lengths_list, limits = [6, 2, 4, 1, 5], [7, 4, 6, 3, 2]
    output_lengths = set()
    for seed in range(3):
        model = make_model(seed, eos_bias=-0.5, attention=attention, cell=cell)
        src, lengths = random_batch(lengths_list, seed=seed)
        tokens, attention_weights = decode(model, src, lengths, torch.tensor(limits), beam=3, alpha=alpha)
        for i, n in enumerate(lengths_list):
            alone_tokens, alone_att = decode(model, src[i:i + 1, :n], lengths[i:i + 1], torch.tensor(limits[i:i + 1]),
                                             beam=3, alpha=alpha)
            assert tokens[i] == alone_tokens[0]
            if attention != "none":
                assert attention_weights[i].shape == (len(tokens[i]), n)
                torch.testing.assert_close(attention_weights[i], alone_att[0], rtol=0, atol=1e-6)
        output_lengths.update(len(t) for t in tokens)
    assert len(output_lengths) >= 3  # hypotheses ended by eos and by the limits, at several lengths


def test_beam_search_scores_at_least_as_high_as_greedy():
    # Not a theorem (beam search can prune the greedy path), but on these seeds it must hold, and it
    # would fail broadly if scores, back-pointers or finished hypotheses were handled wrongly.
    better = 0
    for seed in range(4):
        model = make_model(seed)
        src, lengths = random_batch([6, 4, 3], seed=seed)
        limits = torch.tensor([8, 6, 5])
        greedy_tokens, _ = decode(model, src, lengths, limits)
        beam_tokens, _ = decode(model, src, lengths, limits, beam=4)
        for i, n in enumerate(lengths.tolist()):
            greedy_score = sequence_log_prob(model, src[i], n, greedy_tokens[i], int(limits[i]))
            beam_score = sequence_log_prob(model, src[i], n, beam_tokens[i], int(limits[i]))
            assert beam_score >= greedy_score - 1e-5
            better += beam_score > greedy_score + 1e-5
    assert better > 0  # the beam found something greedy missed at least once


@torch.no_grad()
def reference_beam_search(model, src, length: int, beam: int, limit: int, alpha: float) -> list[int]:
    """Textbook beam search, one hypothesis at a time, for one sentence: what the batched one must equal."""
    memory = model.encode(src[None, :length], torch.tensor([length]))
    hyps = [([], 0.0, model.init_state(memory), False)]  # tokens (eos included), score, state, finished
    for _ in range(limit):
        if all(done for *_, done in hyps):
            break
        candidates = []
        for tokens, score, state, done in hyps:
            if done:
                candidates.append((tokens, score, state, True))
                continue
            log_probs, new_state, _ = model.step(torch.tensor([tokens[-1] if tokens else BOS]), state, memory)
            for w in range(VOCAB):
                candidates.append((tokens + [w], score + float(log_probs[0, w]), new_state,
                                   w == EOS or len(tokens) + 1 >= limit))
        hyps = sorted(candidates, key=lambda h: -h[1])[:beam]
    tokens = max(hyps, key=lambda h: h[1] / ((5 + len(h[0])) / 6) ** alpha)[0]
    return tokens[:-1] if tokens and tokens[-1] == EOS else tokens


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_search_equals_a_one_hypothesis_at_a_time_reference(alpha):
    for seed in range(3):
        model = make_model(seed, eos_bias=-0.5, cell="lstm")
        src, lengths = random_batch([6, 3, 5], seed=seed)
        limits = [6, 5, 4]
        tokens, _ = decode(model, src, lengths, torch.tensor(limits), beam=3, alpha=alpha)
        for i, n in enumerate(lengths.tolist()):
            assert tokens[i] == reference_beam_search(model, src[i], n, 3, limits[i], alpha)


def test_beam_as_wide_as_the_vocabulary_finds_the_best_short_output():
    # With beam = vocab and at most 2 tokens, beam search is exhaustive: it must return the argmax over all
    # outputs (checks scores, state reordering and back-pointers against brute force).
    model = make_model(2, attention="luong", cell="lstm")
    src, lengths = random_batch([5, 3], seed=4)
    tokens, _ = decode(model, src, lengths, torch.tensor([2, 2]), beam=VOCAB)
    words = [w for w in range(VOCAB) if w != EOS]
    outputs = [[]] + [[a] for a in words] + [[a, b] for a in words for b in words]
    for i, n in enumerate(lengths.tolist()):
        best = max(outputs, key=lambda out: sequence_log_prob(model, src[i], n, out, 2))
        assert tokens[i] == best


@torch.no_grad()
def test_attention_weights_are_zero_on_padding():
    model = make_model(attention="luong")
    src, lengths = random_batch([5, 2, 4])
    memory = model.encode(src, lengths)
    _, _, weights = model.step(torch.full((3,), BOS), model.init_state(memory), memory)
    assert torch.all(weights[~memory.mask] == 0)
    torch.testing.assert_close(weights.sum(1), torch.ones(3))
    # after expanding to beams, each row still attends only to its own sentence's real positions
    expanded = reorder_state(memory, torch.arange(3).repeat_interleave(2))
    assert expanded.mask.shape == (6, 5) and torch.equal(expanded.mask[1], memory.mask[0])


@pytest.mark.parametrize("attention", ["none", "luong", "bahdanau"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_every_variant_trains_one_step(attention, cell):
    model = make_model(attention=attention, cell=cell, dropout=0.2).train()
    src, lengths = random_batch([5, 3])
    tgt_out = torch.tensor([[4, 5, 6, EOS], [7, EOS, PAD, PAD]])
    tgt_in = torch.tensor([[BOS, 4, 5, 6], [BOS, 7, EOS, PAD]])
    loss = model.loss(src, lengths, tgt_in, tgt_out, label_smoothing=0.1)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("decoder_hidden_size", [8, 12])
def test_tied_embeddings_share_the_output_matrix(decoder_hidden_size):
    model = make_model(tie_embeddings=True, decoder_hidden_size=decoder_hidden_size, input_feeding=False)
    assert model.output.weight is model.tgt_embed.weight
    src, lengths = random_batch([4, 2])
    tgt = torch.tensor([[BOS, 3, 4], [BOS, 5, EOS]])
    model.loss(src, lengths, tgt, torch.tensor([[3, 4, EOS], [5, EOS, PAD]])).backward()
    assert model.tgt_embed.weight.grad[3].abs().sum() > 0


def test_scheduled_sampling_runs_and_uses_predictions():
    model = make_model(cell="lstm")
    src, lengths = random_batch([5, 3])
    tgt_in = torch.tensor([[BOS, 4, 5, 6], [BOS, 7, EOS, PAD]])
    tgt_out = torch.tensor([[4, 5, 6, EOS], [7, EOS, PAD, PAD]])
    sampled = model.loss(src, lengths, tgt_in, tgt_out, label_smoothing=0.1, teacher_forcing=0.0)
    sampled.backward()
    forced = model.loss(src, lengths, tgt_in, tgt_out, label_smoothing=0.1, teacher_forcing=1.0)
    assert torch.isfinite(sampled) and not torch.allclose(sampled, forced)
    # probability 1 of gold tokens in the step loop is exactly teacher forcing
    loop = model.loss(src, lengths, tgt_in, tgt_out, label_smoothing=0.1, teacher_forcing=0.999999)
    torch.testing.assert_close(loop, forced)


def test_bad_config_names_the_key():
    with pytest.raises(ConfigError, match="model.attention"):
        make_model(attention="dot")
    with pytest.raises(ConfigError, match="model.cell"):
        make_model(cell="transformer")


def test_learns_to_reverse_short_sequences():
    torch.manual_seed(0)
    vocab = 9  # pad, bos, eos + 6 symbols
    cfg = {**TINY, "embedding_dim": 16, "hidden_size": 16, "decoder_hidden_size": 32, "attention_size": 16}
    model = build_seq2seq(OmegaConf.create(cfg), vocab, vocab, PAD)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    lengths = torch.full((64,), 4)
    start = time.perf_counter()
    for _ in range(250):
        src = torch.randint(3, vocab, (64, 4))
        tgt = torch.cat([src.flip(1), torch.full((64, 1), EOS)], dim=1)
        tgt_in = torch.cat([torch.full((64, 1), BOS), tgt[:, :-1]], dim=1)
        optimizer.zero_grad()
        model.loss(src, lengths, tgt_in, tgt).backward()
        optimizer.step()
    model.eval()
    src = torch.randint(3, vocab, (200, 4))
    tokens, _ = decode(model, src, torch.full((200,), 4), torch.full((200,), 6), beam=2)
    predicted = torch.tensor([(t + [PAD] * 4)[:4] for t in tokens])
    accuracy = (predicted == src.flip(1)).float().mean().item()
    assert accuracy > 0.9, f"token accuracy {accuracy:.3f}"
    assert time.perf_counter() - start < 20
