"""The CRF against brute-force enumeration of every tag sequence."""

from __future__ import annotations

import itertools

import torch

from nlpseq.modules.crf import ConditionalRandomField, allowed_transitions_bio


def brute_force(crf: ConditionalRandomField, emissions: torch.Tensor, length: int):
    """All tag sequences of one sentence: (log Z, best path, score of every path)."""
    trans, start, end = crf._scores()
    scores = {}
    for path in itertools.product(range(crf.num_tags), repeat=length):
        s = start[path[0]] + end[path[-1]] + sum(emissions[t, path[t]] for t in range(length))
        s = s + sum(trans[path[t - 1], path[t]] for t in range(1, length))
        scores[path] = s
    stacked = torch.stack(list(scores.values()))
    return torch.logsumexp(stacked, 0), list(max(scores, key=lambda p: scores[p])), scores


def random_crf(num_tags: int, constraints=None) -> ConditionalRandomField:
    torch.manual_seed(0)
    crf = ConditionalRandomField(num_tags, constraints)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    return crf


def test_partition_viterbi_and_path_score_equal_brute_force_on_3_tokens_3_tags():
    crf = random_crf(3)
    emissions = torch.randn(2, 3, 3)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    log_z = crf.log_partition(emissions, mask)
    best = crf.viterbi_tags(emissions, mask)
    for b, length in enumerate((3, 2)):
        expected_z, expected_best, scores = brute_force(crf, emissions[b], length)
        torch.testing.assert_close(log_z[b], expected_z)
        assert best[b] == expected_best
        tags = torch.tensor([list(expected_best) + [0] * (3 - length)])
        torch.testing.assert_close(crf.path_score(emissions[b:b + 1], tags, mask[b:b + 1])[0],
                                   scores[tuple(expected_best)])
    nll = crf(emissions, torch.tensor([best[0], best[1] + [0]]), mask)
    assert (nll >= 0).all()  # a path's probability is at most 1


def test_bio_constraints_are_never_violated():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    crf = random_crf(len(labels), allowed_transitions_bio(labels))
    emissions = torch.randn(8, 6, len(labels))
    emissions[..., 2] += 5.0  # I-PER looks best everywhere, but may not follow O / start a sentence
    mask = torch.ones(8, 6, dtype=torch.bool)
    for path in crf.viterbi_tags(emissions, mask):
        tags = [labels[i] for i in path]
        assert not tags[0].startswith("I-")
        for prev, cur in zip(tags, tags[1:]):
            assert not cur.startswith("I-") or prev[2:] == cur[2:]


def test_allowed_transitions_bio():
    trans, start, end = allowed_transitions_bio(["O", "B-PER", "I-PER", "I-LOC"])
    assert trans[1, 2] and trans[2, 2] and not trans[0, 2] and not trans[1, 3] and trans[2, 0]
    assert start.tolist() == [True, True, False, False] and end.all()


def test_half_precision_autocast_leaves_the_crf_in_float32():
    """Under ``trainer.precision=bf16`` the encoder hands the CRF bfloat16 emissions inside autocast; the forward
    algorithm's exp-space products in bfloat16 lose log Z (a NER run on a GPU went NaN at its third epoch), so the
    CRF computes in float32 whatever the autocast: the same loss and gradient as float32 on the same inputs."""
    crf = random_crf(9, allowed_transitions_bio(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG",
                                                  "B-MISC", "I-MISC"]))
    torch.manual_seed(1)
    emissions = (5 * torch.randn(4, 40, 9)).bfloat16().float().requires_grad_()  # values bfloat16 can hold
    mask = torch.arange(40).expand(4, 40) < torch.tensor([[40], [33], [12], [1]])
    tags = torch.tensor(crf.viterbi_tags(emissions.detach(), mask)[0]).expand(4, 40)
    expected = crf(emissions, tags, mask)
    (grad,) = torch.autograd.grad(expected.sum(), emissions)
    half = emissions.detach().bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        nll = crf(half, tags, mask)
        best = crf.viterbi_tags(half, mask)
    assert nll.dtype == torch.float32
    torch.testing.assert_close(nll, expected, rtol=0, atol=1e-3)
    (half_grad,) = torch.autograd.grad(nll.sum(), half)
    torch.testing.assert_close(half_grad.float(), grad, rtol=0, atol=1e-2)  # rounded to bfloat16 once, at the end
    assert best == crf.viterbi_tags(emissions.detach(), mask)
