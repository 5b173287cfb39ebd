"""CoNLL reader and converter, vocabulary, batching, tokenizer, corpus locations."""

from __future__ import annotations

import gzip

import pytest
import torch

from nlpseq.data.batching import bucket_batches, pad_characters, pad_sequences
from nlpseq.data.conll import read_conll
from nlpseq.data.datasets import corpus_dir
from nlpseq.data.tokenize import tokenize_with_offsets
from nlpseq.data.vocab import Vocabulary
from nlpseq.errors import ConfigError, DataError, NlpseqError

FOUR_COLUMNS = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O

BRUSSELS NNP B-NP B-LOC
"""


def write(tmp_path, text: str, name: str = "f.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_four_columns_and_skips_docstart(tmp_path):
    sentences = read_conll(write(tmp_path, FOUR_COLUMNS))
    assert [s.tokens for s in sentences] == [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"],
                                             ["BRUSSELS"]]
    assert sentences[1].tags == ["B-PER", "I-PER"]
    assert sentences[0].line == 3


def test_reads_two_columns_and_gzip(tmp_path):
    path = tmp_path / "f.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("New B-LOC\nYork I-LOC\nis O\n\n\nbig O\n")
    sentences = read_conll(path)
    assert [s.tags for s in sentences] == [["B-LOC", "I-LOC", "O"], ["O"]]


def test_iob1_is_converted_to_iob2(tmp_path):
    text = "The O\nNew I-ORG\nYork I-ORG\nTimes I-ORG\nand O\nBerlin I-LOC\nParis B-LOC\n"
    assert read_conll(write(tmp_path, text), scheme="iob1")[0].tags == [
        "O", "B-ORG", "I-ORG", "I-ORG", "O", "B-LOC", "B-LOC"]
    # a type change inside a run of I- tags starts a new entity
    assert read_conll(write(tmp_path, "a I-PER\nb I-LOC\n"), scheme="iob1")[0].tags == ["B-PER", "B-LOC"]


@pytest.mark.parametrize("text, line, fragment", [
    ("EU NNP B-NP B-ORG\nrejects VBZ O\n", 2, "expected 4 columns"),
    ("EU B-ORG\nrejects O\nGerman X-MISC\n", 3, "not in the BIO scheme"),
    ("EU\n", 1, "at least 2 columns"),
    ("EU O\nUnion I-ORG\n", 2, "I-ORG follows O"),
    ("EU B-LOC\nUnion I-ORG\n", 2, "I-ORG follows B-LOC"),
])
def test_malformed_lines_name_file_and_line(tmp_path, text, line, fragment):
    path = write(tmp_path, text)
    with pytest.raises(DataError) as err:
        read_conll(path)
    assert err.value.line == line and fragment in str(err.value) and str(path) in str(err.value)


def test_non_utf8_bytes_are_reported_with_their_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("EU B-ORG\nM\u00fcller B-PER\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.txt:2: is not valid UTF-8"):
        read_conll(path)


@pytest.mark.parametrize("text", ["", "\n\n", "-DOCSTART- -X- -X- O\n\n"])
def test_empty_file_is_an_error(tmp_path, text):
    with pytest.raises(DataError, match="contains no sentences"):
        read_conll(write(tmp_path, text))


def test_unknown_scheme_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="data.scheme"):
        read_conll(write(tmp_path, "a O\n"), scheme="iobes")


def test_vocabulary_round_trip_and_limits():
    from collections import Counter

    counts = Counter("the the the cat cat sat on the mat mat".split())
    vocab = Vocabulary.from_counter(counts, min_freq=2)
    assert vocab.itos == ["<pad>", "<unk>", "the", "cat", "mat"]
    assert vocab.encode(["cat", "dog"]) == [3, 1] and vocab.decode([2, 4]) == ["the", "mat"]
    assert Vocabulary.from_counter(counts, max_size=2).itos[2:] == ["the", "cat"]
    restored = Vocabulary.from_dict(vocab.to_dict())
    assert restored == vocab and restored.pad_id == 0 and restored.unk_id == 1
    labels = Vocabulary(["O", "B-PER"], pad=None, unk=None)
    assert Vocabulary.from_dict(labels.to_dict()).itos == ["O", "B-PER"]
    with pytest.raises(KeyError):
        labels.index("I-PER")


def test_bucket_batches_cover_every_example_once_and_are_reproducible():
    lengths = [(i * 7) % 23 + 1 for i in range(100)]
    a = bucket_batches(lengths, 8, True, torch.Generator().manual_seed(3), bucket_factor=5)
    b = bucket_batches(lengths, 8, True, torch.Generator().manual_seed(3), bucket_factor=5)
    assert a == b and sorted(i for batch in a for i in batch) == list(range(100))
    def spread(batches):
        return sum(max(lengths[i] for i in g) - min(lengths[i] for i in g) for g in batches) / len(batches)

    shuffled = torch.randperm(100, generator=torch.Generator().manual_seed(3)).tolist()
    unsorted = [shuffled[i:i + 8] for i in range(0, 100, 8)]
    assert spread(a) < 0.5 * spread(unsorted)  # sorted within pools: batches hold similar lengths
    ordered = bucket_batches(lengths, 8, False)
    assert lengths[ordered[0][0]] == max(lengths)


def test_padding_helpers():
    assert pad_sequences([[1, 2, 3], [4]]).tolist() == [[1, 2, 3], [4, 0, 0]]
    chars = pad_characters([[[1, 2], [3]], [[4, 5, 6]]])
    assert chars.shape == (2, 2, 3) and chars[0, 1].tolist() == [3, 0, 0] and chars[1, 1].tolist() == [0, 0, 0]


def test_tokenizer_keeps_offsets():
    text = "U.S. firm Acme's 1,000 shares, e.g. in New-York (1996-08-22)."
    spans = tokenize_with_offsets(text)
    assert [t for t, _, _ in spans] == ["U.S.", "firm", "Acme's", "1,000", "shares", ",", "e.g.", "in", "New-York",
                                        "(", "1996-08-22", ")", "."]
    assert all(text[a:b] == t for t, a, b in spans)


def test_missing_corpus_says_where_to_put_it(tmp_path):
    with pytest.raises(NlpseqError) as err:
        corpus_dir("conll2003", tmp_path, download=False)
    message = str(err.value)
    assert str((tmp_path / "conll2003").resolve()) in message and "train.txt" in message and "NLPSEQ_DATA" in message


def test_missing_files_are_downloaded_and_checksummed(tmp_path, monkeypatch):
    from nlpseq.data import datasets

    source = tmp_path / "remote" / "train.txt"
    source.parent.mkdir()
    source.write_text("EU B-ORG\n", encoding="utf-8")
    entry = {"folder": "tiny", "description": "a tiny corpus",
             "files": {"train.txt": (source.as_uri(), datasets.md5sum(source))}}
    monkeypatch.setitem(datasets.MANIFEST, "tiny", entry)
    folder = corpus_dir("tiny", tmp_path / "root")
    assert (folder / "train.txt").read_text(encoding="utf-8") == "EU B-ORG\n"

    entry["files"] = {"test.txt": (source.as_uri(), "0" * 32)}
    with pytest.raises(NlpseqError, match="checksum mismatch") as err:
        corpus_dir("tiny", tmp_path / "root")
    assert not (folder / "test.txt").exists() and not list(folder.glob("*.part"))
    assert "Put the files there" in str(err.value)
