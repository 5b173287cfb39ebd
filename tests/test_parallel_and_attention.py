"""Parallel text reader and the decoder's attention modules."""

from __future__ import annotations

import gzip

import pytest
import torch

from nlpseq.data.parallel import ParallelPair, read_parallel
from nlpseq.errors import ConfigError, DataError
from nlpseq.modules.attention import BahdanauAttention, LuongAttention, build_attention


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_aligned_pairs_from_gzip(tmp_path):
    src = tmp_path / "train.de.gz"
    with gzip.open(src, "wt", encoding="utf-8") as f:
        f.write("Ein Hund läuft.\r\nZwei Männer  \n")
    tgt = write(tmp_path, "train.en", "A dog runs.\nTwo men\n")
    pairs, skipped = read_parallel(src, tgt)
    assert pairs == [ParallelPair("Ein Hund läuft.", "A dog runs.", 1), ParallelPair("Zwei Männer", "Two men", 2)]
    assert skipped == 0


@pytest.mark.parametrize("short_side", ["src", "tgt"])
def test_line_count_mismatch_names_both_files_and_the_line(tmp_path, short_side):
    long = write(tmp_path, "long.txt", "a\nb\nc\n")
    short = write(tmp_path, "short.txt", "x\ny\n")
    args = (short, long) if short_side == "src" else (long, short)
    with pytest.raises(DataError) as err:
        read_parallel(*args)
    message = str(err.value)
    assert "short.txt" in message and "long.txt" in message
    assert "has 2 lines but" in message and "has 3" in message and "ends after line 2" in message
    assert err.value.path == str(short)


def test_empty_sides_are_skipped_and_counted(tmp_path):
    src = write(tmp_path, "s.txt", "eins\n\ndrei\n   \nfünf\n")
    tgt = write(tmp_path, "t.txt", "one\ntwo\n\tthree\nfour\n\n")
    pairs, skipped = read_parallel(src, tgt)
    assert [(p.source, p.target, p.line) for p in pairs] == [("eins", "one", 1), ("drei", "three", 3)]
    assert skipped == 3


def test_non_utf8_line_is_reported_with_its_line(tmp_path):
    src = write(tmp_path, "s.txt", "a\nb\n")
    tgt = tmp_path / "latin1.txt"
    tgt.write_bytes("ok\nMännlich\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.txt:2: is not valid UTF-8"):
        read_parallel(src, tgt)


@pytest.mark.parametrize("text", ["", "\n  \n\n"])
def test_no_sentence_pairs_is_an_error(tmp_path, text):
    with pytest.raises(DataError, match="no sentence pairs"):
        read_parallel(write(tmp_path, "s.txt", text), write(tmp_path, "t.txt", text))


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_parallel(write(tmp_path, "s.txt", "a\n"), tmp_path / "absent.txt")


def make(kind: str) -> BahdanauAttention | LuongAttention:
    torch.manual_seed(0)
    return build_attention(kind, query_size=5, key_size=6, attention_size=4)


def padded_batch():
    """Three sources of lengths 4, 2, 1 padded to 4, padding filled with large garbage."""
    torch.manual_seed(1)
    lengths = torch.tensor([4, 2, 1])
    mask = torch.arange(4).unsqueeze(0) < lengths.unsqueeze(1)
    values = torch.randn(3, 4, 6)
    values = torch.where(mask.unsqueeze(-1), values, 1e4 * torch.randn(3, 4, 6))
    return torch.randn(3, 5), values, mask, lengths


@pytest.mark.parametrize("kind", ["bahdanau", "luong"])
def test_weights_sum_to_one_and_padding_gets_exactly_zero(kind):
    attention = make(kind)
    query, values, mask, _ = padded_batch()
    context, weights = attention(query, attention.project_keys(values), values, mask)
    assert context.shape == (3, 6) and weights.shape == (3, 4)
    assert torch.all(weights[~mask] == 0)
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(3))


@pytest.mark.parametrize("kind", ["bahdanau", "luong"])
def test_garbage_in_padding_does_not_change_the_context(kind):
    attention = make(kind)
    query, values, mask, _ = padded_batch()
    zeroed = values * mask.unsqueeze(-1)
    context, weights = attention(query, None, values, mask)
    context_zeroed, weights_zeroed = attention(query, None, zeroed, mask)
    assert torch.equal(weights, weights_zeroed)
    assert torch.equal(context, context_zeroed)


@pytest.mark.parametrize("kind", ["bahdanau", "luong"])
def test_padded_batch_equals_each_example_alone(kind):
    attention = make(kind)
    query, values, mask, lengths = padded_batch()
    context, weights = attention(query, None, values, mask)
    for i, n in enumerate(lengths.tolist()):
        alone_values = values[i:i + 1, :n]
        alone, alone_weights = attention(query[i:i + 1], None, alone_values, torch.ones(1, n, dtype=torch.bool))
        torch.testing.assert_close(context[i:i + 1], alone)
        torch.testing.assert_close(weights[i:i + 1, :n], alone_weights)


@pytest.mark.parametrize("kind", ["bahdanau", "luong"])
def test_keys_projected_once_match_keys_projected_inside(kind):
    attention = make(kind)
    query, values, mask, _ = padded_batch()
    keys = attention.project_keys(values)
    expected_size = 4 if kind == "bahdanau" else 5  # attention_size vs query_size
    assert keys.shape == (3, 4, expected_size)
    for step in range(3):  # a decoder loop reuses the same keys with a new query each step
        q = query + step
        outside = attention(q, keys, values, mask)
        inside = attention(q, None, values, mask)
        assert torch.equal(outside[0], inside[0]) and torch.equal(outside[1], inside[1])


def test_gradients_reach_every_parameter():
    for kind in ("bahdanau", "luong"):
        attention = make(kind)
        query, values, mask, _ = padded_batch()
        attention(query.requires_grad_(), None, values, mask)[0].sum().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in attention.parameters())
        assert torch.isfinite(query.grad).all()


def test_build_attention_none_and_bad_kind():
    assert build_attention("none", 5, 6, 4) is None
    assert isinstance(make("bahdanau"), BahdanauAttention) and isinstance(make("luong"), LuongAttention)
    with pytest.raises(ConfigError, match=r"model\.attention must be one of bahdanau, luong, none, got 'dot'"):
        build_attention("dot", 5, 6, 4)
