"""Shared modules: padding never leaks, char features, dropout, pretrained vectors."""

from __future__ import annotations

import gzip

import pytest
import torch

from nlpseq.data.vectors import match_vectors, read_vectors
from nlpseq.errors import DataError
from nlpseq.modules.dropout import SequenceDropout
from nlpseq.modules.embeddings import CharCNN, CharLSTM, TokenEmbedder, build_char_encoder
from nlpseq.modules.encoders import RecurrentEncoder, reverse_indices


def test_reverse_indices_reverse_within_length_only():
    assert reverse_indices(torch.tensor([3, 1]), 4).tolist() == [[2, 1, 0, 3], [0, 1, 2, 3]]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_padded_batch_equals_each_sequence_alone(cell, bidirectional):
    torch.manual_seed(0)
    encoder = RecurrentEncoder(5, 7, cell, layers=2, bidirectional=bidirectional, dropout=0.3).eval()
    lengths = torch.tensor([6, 3, 1])
    x = torch.randn(3, 6, 5)
    x[1, 3:] = 100.0  # garbage in the padding must not reach any output
    x[2, 1:] = -100.0
    out, final = encoder(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone, alone_final = encoder(x[i:i + 1, :n], lengths[i:i + 1])
        torch.testing.assert_close(out[i, :n], alone[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(final[i], alone_final[0], atol=1e-5, rtol=1e-5)
        assert out[i, n:].abs().sum() == 0
    if bidirectional:  # the backward direction really reads right to left
        torch.testing.assert_close(final[0, 7:], out[0, 0, 7:])


def test_encoder_matches_torch_bidirectional_lstm():
    torch.manual_seed(0)
    encoder = RecurrentEncoder(4, 5, "lstm", layers=1, bidirectional=True).eval()
    reference = torch.nn.LSTM(4, 5, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for suffix, rnn in (("", encoder.forward_rnns[0]), ("_reverse", encoder.backward_rnns[0])):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(reference, f"{name}_l0{suffix}").copy_(getattr(rnn, f"{name}_l0"))
    x, lengths = torch.randn(2, 5, 4), torch.tensor([5, 2])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    expected, _ = torch.nn.utils.rnn.pad_packed_sequence(reference(packed)[0], batch_first=True)
    torch.testing.assert_close(encoder(x, lengths)[0], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("char_encoder", ["cnn", "lstm", "cnn+lstm"])
def test_char_features_do_not_depend_on_the_batch(char_encoder):
    torch.manual_seed(0)
    chars = build_char_encoder(char_encoder, 20, 6, 4)
    embedder = TokenEmbedder(30, 5, chars).eval()
    words = torch.tensor([[3, 4, 5], [6, 0, 0]])
    char_ids = torch.zeros(2, 3, 7, dtype=torch.long)
    char_ids[0, 0, :7] = torch.arange(1, 8)
    char_ids[0, 1, :2] = torch.tensor([3, 4])
    char_ids[0, 2, :1] = torch.tensor([9])
    char_ids[1, 0, :3] = torch.tensor([5, 6, 7])
    both = embedder(words, char_ids)
    alone = embedder(words[1:, :1], char_ids[1:, :1, :3])
    torch.testing.assert_close(both[1, 0], alone[0, 0])
    assert both.shape == (2, 3, 5 + chars.output_size)


def test_cnn_and_lstm_side_by_side_concatenate_their_features():
    torch.manual_seed(0)
    both = build_char_encoder("cnn+lstm", 20, 6, 4)
    cnn, lstm = both.encoders
    assert isinstance(cnn, CharCNN) and isinstance(lstm, CharLSTM)
    assert both.output_size == 4 + 2 * 4
    chars = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    lengths = torch.tensor([3, 2])
    torch.testing.assert_close(both(chars, lengths), torch.cat([cnn(chars, lengths), lstm(chars, lengths)], -1))


def test_word_dropout_only_in_training():
    embedder = TokenEmbedder(10, 4, word_dropout=1.0)
    words = torch.tensor([[3, 4, 0]])
    assert torch.equal(embedder(words)[0, 0], embedder.words.weight[1])  # all words became <unk>
    assert torch.equal(embedder(words)[0, 2], torch.zeros(4))  # padding stays padding
    assert torch.equal(embedder.eval()(words)[0, 0], embedder.words.weight[3])


def test_locked_dropout_shares_one_mask_over_time():
    torch.manual_seed(0)
    out = SequenceDropout(0.5, locked=True).train()(torch.ones(4, 6, 8))
    assert torch.equal(out, out[:, :1].expand_as(out)) and set(out.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(SequenceDropout(0.5).eval()(torch.ones(2, 3, 4)), torch.ones(2, 3, 4))


def test_read_glove_and_word2vec_text(tmp_path):
    glove = tmp_path / "vectors.txt.gz"
    with gzip.open(glove, "wt", encoding="utf-8") as f:
        f.write("the 0.1 0.2 0.3\nparis 1 2 3\n0000 7 8 9\nunused 0 0 0\n")
    vectors, dim = read_vectors(glove, {"the", "paris", "0000", "berlin"})
    assert dim == 3 and sorted(vectors) == ["0000", "paris", "the"]
    weights, found = match_vectors(["<pad>", "Paris", "1996", "berlin"], vectors, dim)
    assert found.tolist() == [False, True, True, False]
    assert weights[1].tolist() == [1.0, 2.0, 3.0] and weights[2].tolist() == [7.0, 8.0, 9.0]
    w2v = tmp_path / "w2v.txt"
    w2v.write_text("2 2\nhello 0.5 0.5\nworld 1 1\n", encoding="utf-8")
    assert read_vectors(w2v, {"world"}) == ({"world": [1.0, 1.0]}, 2)
    bad = tmp_path / "bad.txt"
    bad.write_text("a 1 2\nb 1\n", encoding="utf-8")
    with pytest.raises(DataError, match="bad.txt:2: expected 2 values"):
        read_vectors(bad, {"a", "b"})


def test_char_cnn_equals_a_padded_conv1d():
    torch.manual_seed(0)
    cnn = CharCNN(12, embedding_dim=4, filters=6, kernel_size=3)
    conv = torch.nn.Conv1d(4, 6, 3, padding=1)
    with torch.no_grad():  # Linear over windows [c_{t-1}, c_t, c_{t+1}] <-> conv weight (out, in, kernel)
        conv.weight.copy_(cnn.window.weight.view(6, 3, 4).permute(0, 2, 1))
        conv.bias.copy_(cnn.window.bias)
    chars = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    expected = conv(cnn.embed(chars).transpose(1, 2)).max(dim=2).values
    torch.testing.assert_close(cnn(chars, torch.tensor([4, 4])), expected)


def test_frozen_pretrained_rows_stay_fixed_while_others_learn():
    torch.manual_seed(0)
    embedder = TokenEmbedder(6, 3)
    vectors, found = torch.randn(6, 3), torch.tensor([False, False, True, True, False, False])
    embedder.load_vectors(vectors, found, freeze=True)
    before = embedder.words.weight.detach().clone()
    optimizer = torch.optim.Adam(embedder.parameters(), lr=0.1)
    embedder(torch.tensor([[2, 3, 4, 5]])).sum().backward()
    optimizer.step()
    after = embedder.words.weight.detach()
    assert torch.equal(after[2:4], vectors[2:4]) and not torch.equal(after[4:], before[4:])


def test_weight_average_tracks_and_swaps_back():
    from nlpseq.averaging import WeightAverage

    layer = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.0)
    average = WeightAverage(layer, decay=0.5)
    for value in (1.0, 2.0, 3.0):
        with torch.no_grad():
            layer.weight.fill_(value)
        average.update()  # decays 2/11, 3/12, 4/13 while ramping up
    expected = 0.0
    for n, value in enumerate((1.0, 2.0, 3.0), start=1):
        d = min(0.5, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * value
    with average.applied():
        torch.testing.assert_close(layer.weight, torch.full((1, 2), expected))
    assert torch.equal(layer.weight.detach(), torch.full((1, 2), 3.0))


def test_singleton_dropout_replaces_only_marked_words():
    embedder = TokenEmbedder(10, 4, singleton_dropout=1.0)
    embedder.mark_singletons(torch.tensor([3]))
    out = embedder(torch.tensor([[3, 4]]))
    assert torch.equal(out[0, 0], embedder.words.weight[1]) and torch.equal(out[0, 1], embedder.words.weight[4])
