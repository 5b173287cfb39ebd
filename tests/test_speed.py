"""The fast paths equal the plain ones: CRF forward-backward, characters per distinct word, lazy Adam and
weight averaging for sparse embeddings, gradient clipping, token-budget batches, thread choice."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch import nn

from nlpseq.averaging import WeightAverage
from nlpseq.data.batching import bucket_batches, distinct_characters, pad_characters
from nlpseq.modules.crf import ConditionalRandomField, allowed_transitions_bio
from nlpseq.modules.embeddings import CharCNN, TokenEmbedder
from nlpseq.optim import LazyAdam, clip_gradients, use_sparse_embeddings
from nlpseq.threads import available_cores, choose_threads, set_threads


def _crf_case(seed: int = 0):
    torch.manual_seed(seed)
    labels = ["O", "B-PER", "I-PER", "B-LOC"]
    crf = ConditionalRandomField(len(labels), allowed_transitions_bio(labels))
    with torch.no_grad():
        for p in (crf.transitions, crf.start, crf.end):
            p.normal_()
    lengths = torch.tensor([4, 1, 3, 2])
    mask = torch.arange(4).unsqueeze(0) < lengths.unsqueeze(1)
    emissions = torch.randn(4, 4, len(labels), dtype=torch.float64, requires_grad=True)
    return crf.double(), emissions, mask, lengths


def _all_path_scores(crf, emissions, n: int) -> torch.Tensor:
    """Scores of every tag sequence of length ``n`` for one sentence ``(time, tags)``: the loop version."""
    trans, start, end = crf._scores()
    scores = []
    for path in itertools.product(range(crf.num_tags), repeat=n):
        s = start[path[0]] + end[path[-1]] + sum(emissions[t, path[t]] for t in range(n))
        scores.append(s + sum(trans[path[t - 1], path[t]] for t in range(1, n)))
    return torch.stack(scores)


def test_crf_partition_and_gradients_equal_enumerating_every_path():
    crf, emissions, mask, lengths = _crf_case()
    fast = crf.log_partition(emissions, mask)
    weights = torch.tensor([1.0, -0.5, 2.0, 0.3], dtype=torch.float64)
    grads_fast = torch.autograd.grad((fast * weights).sum(), [emissions, crf.transitions, crf.start, crf.end])
    slow = torch.stack([torch.logsumexp(_all_path_scores(crf, emissions[b], int(n)), 0)
                        for b, n in enumerate(lengths)])
    grads_slow = torch.autograd.grad((slow * weights).sum(), [emissions, crf.transitions, crf.start, crf.end])
    torch.testing.assert_close(fast, slow)
    for a, b in zip(grads_fast, grads_slow):
        torch.testing.assert_close(a, b)
    assert grads_fast[0][1, 1:].abs().sum() == 0  # padding gets no gradient


def test_crf_viterbi_finds_the_best_path_of_every_sentence():
    crf, emissions, mask, lengths = _crf_case(1)
    best = crf.viterbi_tags(emissions.detach(), mask)
    for b, n in enumerate(lengths.tolist()):
        paths = list(itertools.product(range(crf.num_tags), repeat=n))
        assert tuple(best[b]) == paths[int(_all_path_scores(crf, emissions[b].detach(), n).argmax())]


def test_crf_partition_is_finite_with_long_sentences_and_sharp_scores():
    crf, _, _, _ = _crf_case(2)
    emissions = torch.randn(2, 120, crf.num_tags, dtype=torch.float64) * 30
    mask = torch.ones(2, 120, dtype=torch.bool)
    emissions.requires_grad_(True)
    z = crf.log_partition(emissions, mask)
    z.sum().backward()
    assert torch.isfinite(z).all() and torch.isfinite(emissions.grad).all()
    # each position's tag marginals sum to one
    torch.testing.assert_close(emissions.grad.sum(-1), torch.ones(2, 120, dtype=torch.float64))


def test_characters_of_distinct_words_give_the_same_features_and_gradients():
    torch.manual_seed(0)
    words = [[[3, 4, 5], [6], [3, 4, 5]], [[6], [7, 8]]]  # "abc" and "d" repeat
    batch = distinct_characters(words)
    assert batch.ids.size(0) == 3 and batch.index.tolist() == [[0, 1, 0], [1, 2, 0]]
    word_ids = torch.tensor([[5, 6, 5], [6, 7, 0]])
    embedder = TokenEmbedder(10, 4, CharCNN(10, 5, 6, 3))
    plain = embedder(word_ids, pad_characters(words))
    fast = embedder(word_ids, batch)
    torch.testing.assert_close(fast, plain)
    grad_plain = torch.autograd.grad(plain.pow(2).sum(), list(embedder.parameters()))
    grad_fast = torch.autograd.grad(fast.pow(2).sum(), list(embedder.parameters()))
    for a, b in zip(grad_fast, grad_plain):
        torch.testing.assert_close(a, b)


def _embedding_model(sparse: bool) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(1200, 4), nn.Linear(4, 3))
    if sparse:
        assert len(use_sparse_embeddings(model)) == 1
    return model


def test_lazy_adam_matches_fused_adam_on_dense_and_sparse_adam_on_sparse_parameters():
    lazy_model, dense_model = _embedding_model(True), _embedding_model(False)
    lazy = LazyAdam(list(lazy_model.parameters()), lr=0.05)
    dense = torch.optim.Adam(list(dense_model[1].parameters()), lr=0.05, fused=True)
    rows = torch.optim.SparseAdam([dense_model[0].weight], lr=0.05)
    dense_model[0].sparse = True
    for _ in range(5):
        x = torch.randint(0, 1200, (6,))
        for model, optimizers in ((lazy_model, [lazy]), (dense_model, [dense, rows])):
            for o in optimizers:
                o.zero_grad()
            model(x).pow(2).sum().backward()
            for o in optimizers:
                o.step()
    for a, b in zip(lazy_model.parameters(), dense_model.parameters()):
        torch.testing.assert_close(a, b)


def test_weight_average_of_sparse_rows_equals_the_dense_average():
    model = _embedding_model(True)
    optimizer = LazyAdam(list(model.parameters()), lr=0.05)
    average = WeightAverage(model, 0.9)
    expected = [p.detach().clone() for p in model.parameters()]
    for step in range(1, 13):
        optimizer.zero_grad()
        model(torch.randint(0, 20, (4,))).sum().backward()  # a few rows, so most stay untouched for a while
        clip_gradients(list(model.parameters()), 1.0)
        average.before_step()
        optimizer.step()
        average.update()
        decay = min(0.9, (1 + step) / (10 + step))
        expected = [e * decay + p.detach() * (1 - decay) for e, p in zip(expected, model.parameters())]
        if step % 5 == 0:  # reading the average in between must not disturb it
            with average.applied():
                pass
    with average.applied():
        for e, p in zip(expected, model.parameters()):
            torch.testing.assert_close(p.detach(), e)
    saved = copy.deepcopy(average.state_dict())
    for e, s in zip(expected, saved["shadow"]):
        torch.testing.assert_close(s, e)


@pytest.mark.parametrize("max_norm", [0.01, 1e9])
def test_clip_gradients_agrees_with_torch_and_counts_sparse_rows_once(max_norm):
    sparse_model, dense_model = _embedding_model(True), _embedding_model(False)
    x = torch.tensor([1, 1, 5, 7, 7, 7])  # repeated rows: the sparse gradient holds duplicates
    for model in (sparse_model, dense_model):
        model(x).pow(2).sum().backward()
    norm = clip_gradients(list(sparse_model.parameters()), max_norm)
    expected = float(torch.nn.utils.clip_grad_norm_(dense_model.parameters(), max_norm))
    assert norm == pytest.approx(expected, rel=1e-5)
    torch.testing.assert_close(sparse_model[0].weight.grad.to_dense(), dense_model[0].weight.grad)
    torch.testing.assert_close(sparse_model[1].weight.grad, dense_model[1].weight.grad)


def test_sparse_embeddings_skip_tied_and_small_tables():
    model = nn.ModuleDict({"big": nn.Embedding(2000, 4), "small": nn.Embedding(50, 4), "tied": nn.Embedding(3000, 4),
                           "out": nn.Linear(4, 3000)})
    model["out"].weight = model["tied"].weight
    assert len(use_sparse_embeddings(model)) == 1
    assert model["big"].sparse and not model["small"].sparse and not model["tied"].sparse


def test_frozen_pretrained_rows_stay_fixed_with_sparse_gradients():
    embedder = TokenEmbedder(1500, 4)
    found = torch.zeros(1500, dtype=torch.bool)
    found[:700] = True
    embedder.load_vectors(torch.ones(1500, 4), found, freeze=True)
    use_sparse_embeddings(embedder)
    optimizer = LazyAdam(list(embedder.parameters()), lr=0.1)
    before = embedder.words.weight.detach().clone()
    embedder(torch.tensor([[5, 800, 900]])).sum().backward()
    optimizer.step()
    after = embedder.words.weight.detach()
    assert torch.equal(after[5], before[5]) and not torch.equal(after[800], before[800])


def test_token_budget_batches_cover_every_example_once_within_the_budget():
    lengths = [1 + (i * 7) % 40 for i in range(500)]
    batches = bucket_batches(lengths, 16, True, torch.Generator().manual_seed(0), max_tokens=200)
    assert sorted(i for b in batches for i in b) == list(range(500))
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 200
    short = [b for b in batches if max(lengths[i] for i in b) <= 5]
    assert max(len(b) for b in short) > 16  # short sentences come more than batch_size at a time
    again = bucket_batches(lengths, 16, True, torch.Generator().manual_seed(0), max_tokens=200)
    assert again == batches


def test_thread_choice_is_a_valid_count_and_explicit_counts_are_kept():
    before = torch.get_num_threads()
    try:
        assert 1 <= choose_threads() <= available_cores()
        assert set_threads(1) == 1 and torch.get_num_threads() == 1
        assert set_threads(None) == 1
        with pytest.raises(ValueError):
            set_threads(0)
    finally:
        torch.set_num_threads(before)
