"""Sentiment data: SST and JSON-lines readers with every bad-input case, tokenizers, truncation, IMDB builder."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from nlpseq.data.imdb import build_imdb
from nlpseq.data.labeled import clean_html, read_jsonl, read_label_first, split_off
from nlpseq.data.spm import SentencePieceModel, train_sentencepiece
from nlpseq.data.tokenizers import TextTokenizer, truncate
from nlpseq.errors import ConfigError, DataError
from tests.conftest import make_reviews


def test_read_label_first(tmp_path):
    path = tmp_path / "sst.txt"
    path.write_text("1 a gorgeous , witty movie .\n\n0 dull .\n")
    examples = read_label_first(path, ["0", "1"])
    assert [(e.label, e.text, e.line) for e in examples] == [("1", "a gorgeous , witty movie .", 1), ("0", "dull .", 3)]


@pytest.mark.parametrize("content, line, message", [
    ("1 fine .\n7 out of range .\n", 2, "label '7' is not one of 0, 1"),
    ("1 fine .\n0\n", 2, "has label '0' but no text"),
    ("1 fine .\n0   \n", 2, "has label '0' but no text"),
    ("positive fine .\n", 1, "label 'positive'"),
])
def test_read_label_first_bad_input(tmp_path, content, line, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as error:
        read_label_first(path, ["0", "1"])
    assert error.value.path == str(path) and error.value.line == line


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_empty_files_are_errors(tmp_path, content):
    for reader, name in ((read_label_first, "a.txt"), (read_jsonl, "a.jsonl")):
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(DataError, match="is empty"):
            reader(path, ["0", "1"])


def test_read_jsonl_gzip_and_html(tmp_path):
    path = tmp_path / "train.jsonl.gz"
    rows = [{"id": 0, "rating": 9, "label": 1, "text": "Great film.<br /><br />Loved it."},
            {"id": 1, "rating": 2, "label": 0, "text": "Dull <BR>and long."}]
    with gzip.open(path, "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    examples = read_jsonl(path, ["0", "1"])
    assert [(e.label, e.text) for e in examples] == [("1", "Great film. Loved it."), ("0", "Dull and long.")]
    assert clean_html("a<br />b") == "a b"


@pytest.mark.parametrize("line, message", [
    ('{"label": 1}', "has no 'text' field"),
    ('{"text": "fine"}', "has no 'label' field"),
    ('{"text": "fine", "label": 3}', "label '3' is not one of 0, 1"),
    ('{"text": "  <br />", "label": 1}', "field 'text' is empty"),
    ('{"text": 5, "label": 1}', "field 'text' is empty or not a string"),
    ('{"text": "fine", "label": 1', "is not valid JSON"),
    ('[1, 2]', "expected a JSON object"),
])
def test_read_jsonl_bad_input(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "good", "label": 1}\n' + line + "\n")
    with pytest.raises(DataError, match=message) as error:
        read_jsonl(path, ["0", "1"])
    assert error.value.line == 2 and str(path) in str(error.value)


def test_split_off_is_fixed_by_the_seed(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("".join(f"{label} {text}\n" for label, text in make_reviews(50, 0)))
    examples = read_label_first(path, ["0", "1"])
    rest, held = split_off(examples, 10, seed=3)
    assert len(rest) == 40 and len(held) == 10 and not {e.line for e in rest} & {e.line for e in held}
    assert split_off(examples, 10, seed=3) == (rest, held)
    assert split_off(examples, 10, seed=4)[1] != held


def test_tokenizers(tmp_path, monkeypatch):
    assert TextTokenizer("whitespace", lowercase=True)("A witty ,film") == ["a", "witty", ",film"]
    assert TextTokenizer("regex")("A witty, film!") == ["A", "witty", ",", "film", "!"]
    with pytest.raises(ConfigError, match="data.tokenizer"):
        TextTokenizer("bpe")
    monkeypatch.setenv("NLPSEQ_CACHE", str(tmp_path))
    texts = [text for _, text in make_reviews(200, 1)]
    model = train_sentencepiece(texts, 60, cache_dir=tmp_path / "spm")
    assert train_sentencepiece(texts, 60, cache_dir=tmp_path / "spm") == model  # cached by content
    assert len(list((tmp_path / "spm").glob("*.model"))) == 1
    tokenizer = TextTokenizer("sentencepiece", lowercase=True, spm_model=model)
    pieces = tokenizer("The Film is WITTY .")
    assert tokenizer.spm.decode(pieces) == "the film is witty ."  # round trip
    again = TextTokenizer.from_state(tokenizer.state())
    assert again("the plot is dull") == tokenizer("the plot is dull")
    assert isinstance(tokenizer.state()["spm_model"], bytes)


def test_sentencepiece_round_trip_bpe(tmp_path):
    texts = ["Ein Mann fährt Fahrrad .", "Zwei Hunde spielen im Schnee ."] * 30
    spm = SentencePieceModel(train_sentencepiece(texts, 40, "bpe", cache_dir=tmp_path))
    for text in texts[:2]:
        assert spm.decode(spm.encode(text)) == text
        assert spm.decode_ids(spm.encode_ids(text)) == text


def test_truncate():
    tokens = [str(i) for i in range(10)]
    assert truncate(tokens, None) == tokens and truncate(tokens, 20) == tokens
    assert truncate(tokens, 4, "head") == ["0", "1", "2", "3"]
    assert truncate(tokens, 4, "tail") == ["6", "7", "8", "9"]
    assert truncate(tokens, 8, "head_tail") == ["0", "1", "4", "5", "6", "7", "8", "9"]
    with pytest.raises(ConfigError):
        truncate(tokens, 4, "middle")


def test_build_imdb_from_the_original_archive_layout(tmp_path):
    archive = tmp_path / "aclImdb_v1.tar.gz"
    reviews = {"aclImdb/train/pos/3_9.txt": "Great.<br />Fun.", "aclImdb/train/pos/1_7.txt": "Good.",
               "aclImdb/train/neg/2_1.txt": "Bad.", "aclImdb/test/neg/0_3.txt": "Meh.",
               "aclImdb/test/pos/0_10.txt": "Wow.", "aclImdb/train/unsup/5_0.txt": "skip me",
               "aclImdb/README": "readme"}
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in reviews.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    build_imdb(archive, tmp_path)
    train = [json.loads(line) for line in gzip.open(tmp_path / "train.jsonl.gz", "rt")]
    assert train == [{"id": 1, "rating": 7, "label": 1, "text": "Good."},
                     {"id": 3, "rating": 9, "label": 1, "text": "Great.<br />Fun."},
                     {"id": 2, "rating": 1, "label": 0, "text": "Bad."}]
    assert [e.label for e in read_jsonl(tmp_path / "test.jsonl.gz", ["0", "1"])] == ["1", "0"]
