"""Downloads on a fresh machine: the data root and cache rules, and the GloVe vectors from the official zip."""

from __future__ import annotations

import gzip
import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from nlpseq.data import datasets, downloads
from nlpseq.data.datasets import AUTO, MANIFEST, corpus_dir, default_root, resolve_path
from nlpseq.data.vectors import read_vectors
from nlpseq.errors import NlpseqError
from nlpseq.tasks import TASKS
from tests.conftest import SHARED_DATA, compose_config

GLOVE = "embeddings/glove.6B.50d.txt.gz"
GLOVE_MD5 = "0fac3659c38a4c0e9432fe603de60b12"
TEXT = b"the 0.1 0.2 0.3\nfilm -0.5 1e-05 2\n"


@pytest.fixture
def clean_env(tmp_path, monkeypatch) -> Path:
    """No NLPSEQ_DATA, the cache in tmp_path/cache, and tmp_path/work (empty) as the current directory."""
    monkeypatch.delenv("NLPSEQ_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("NLPSEQ_CACHE", str(tmp_path / "cache"))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path


@pytest.fixture
def fake_glove(clean_env, monkeypatch) -> Path:
    """A glove.6B.zip with the member (and another one) at a file:// URL, the manifest pointing at it."""
    archive = clean_env / "remote" / "glove.6B.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("glove.6B.100d.txt", b"other 1 2\n")
        z.writestr("glove.6B.50d.txt", TEXT)
    entry = dict(MANIFEST["glove6b50d"], archive=(archive.as_uri(), None),
                 files={"glove.6B.50d.txt.gz": ("glove.6B.50d.txt", hashlib.md5(TEXT).hexdigest())})
    monkeypatch.setitem(MANIFEST, "glove6b50d", entry)
    return archive


def test_the_cache_is_nlpseq_cache_else_xdg_else_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NLPSEQ_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert downloads.cache_dir() == tmp_path / "home" / ".cache" / "nlpseq"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # the XDG spec: a relative path is ignored
    assert downloads.cache_dir() == tmp_path / "home" / ".cache" / "nlpseq"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert downloads.cache_dir() == tmp_path / "xdg" / "nlpseq"
    monkeypatch.setenv("NLPSEQ_CACHE", str(tmp_path / "mine"))
    assert downloads.cache_dir() == datasets.cache_dir() == tmp_path / "mine"


def test_the_default_root_is_nlpseq_data_else_a_local_data_folder_with_corpora_else_the_cache(clean_env, monkeypatch):
    assert default_root() == clean_env / "cache" / "data"
    (clean_env / "work" / "data").mkdir()
    (clean_env / "work" / "data" / "README.md").write_text("a data/ folder of something else")
    assert default_root() == clean_env / "cache" / "data"  # an unrelated data/ folder is not taken
    (clean_env / "work" / "data" / "sst").mkdir()
    assert default_root() == Path("data")  # a checkout (or a folder used before) keeps its data/
    monkeypatch.setenv("NLPSEQ_DATA", str(clean_env / "elsewhere"))
    assert default_root() == clean_env / "elsewhere"


def test_the_configs_default_to_auto_and_keep_nlpseq_data_and_data_root(clean_env, monkeypatch):
    for task in ("ner", "sentiment", "translation", "forecast"):
        assert compose_config([f"task={task}"]).data.root == AUTO
    monkeypatch.setenv("NLPSEQ_DATA", str(clean_env / "env"))
    assert compose_config(["task=ner"]).data.root == str(clean_env / "env")
    assert compose_config(["task=ner", "data.root=/given"]).data.root == "/given"


def test_an_auto_root_downloads_into_the_cache_and_writes_nothing_here(clean_env, monkeypatch):
    source = clean_env / "remote" / "train.txt"
    source.parent.mkdir()
    source.write_text("EU B-ORG\n", encoding="utf-8")
    entry = {"folder": "tiny", "description": "a tiny corpus",
             "files": {"train.txt": (source.as_uri(), datasets.md5sum(source))}}
    monkeypatch.setitem(MANIFEST, "tiny", entry)
    folder = corpus_dir("tiny", AUTO)
    assert folder == clean_env / "cache" / "data" / "tiny" and (folder / "train.txt").exists()
    assert not list((clean_env / "work").iterdir())
    (clean_env / "work" / "data" / "tiny").mkdir(parents=True)  # a local data/ with corpora is used as before
    with pytest.raises(NlpseqError, match=str(clean_env / "work" / "data" / "tiny")):
        corpus_dir("tiny", AUTO, download=False)


def test_glove_is_extracted_from_the_zip_gzipped_and_the_zip_stays_in_the_cache(fake_glove, clean_env, monkeypatch):
    path = resolve_path(GLOVE, clean_env / "root", download=True)
    assert path == clean_env / "root" / GLOVE
    assert gzip.decompress(path.read_bytes()) == TEXT and [p.name for p in path.parent.iterdir()] == [path.name]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not the private mode of a temporary file
    vectors, dim = read_vectors(path, {"the", "film"})
    assert dim == 3 and vectors["film"] == [-0.5, 1e-05, 2.0]
    cached = clean_env / "cache" / "downloads" / "glove.6B.zip"
    assert cached.read_bytes() == fake_glove.read_bytes()

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", offline)  # another root: from the cached zip
    assert gzip.decompress(resolve_path(GLOVE, clean_env / "other", download=True).read_bytes()) == TEXT
    assert resolve_path(GLOVE, clean_env / "root") == path  # found: no download asked


def test_a_wrong_member_checksum_is_refused_and_leaves_nothing(fake_glove, clean_env, monkeypatch):
    entry = dict(MANIFEST["glove6b50d"], files={"glove.6B.50d.txt.gz": ("glove.6B.50d.txt", "0" * 32)})
    monkeypatch.setitem(MANIFEST, "glove6b50d", entry)
    with pytest.raises(NlpseqError) as error:
        resolve_path(GLOVE, clean_env / "root", download=True)
    message = str(error.value)
    assert f"checksum mismatch: glove.6B.50d.txt in glove.6B.zip has md5 {hashlib.md5(TEXT).hexdigest()}" in message
    assert "expected " + "0" * 32 in message and "\n" not in message
    assert not (clean_env / "root").exists()  # no file, no .part, no empty folder
    assert not (clean_env / "cache" / "downloads" / "glove.6B.zip").exists()  # the wrong archive is not kept


def test_a_corrupt_archive_is_removed_from_the_cache(fake_glove, clean_env):
    fake_glove.write_bytes(b"<html>not a zip</html>")
    with pytest.raises(NlpseqError, match="glove.6B.zip is not the expected archive .*removed it from the cache"):
        resolve_path(GLOVE, clean_env / "root", download=True)
    assert not list((clean_env / "cache" / "downloads").iterdir())


def test_missing_vectors_say_where_to_put_them_and_where_to_get_them(clean_env, monkeypatch):
    with pytest.raises(NlpseqError) as error:
        resolve_path(GLOVE, clean_env / "root")
    message = str(error.value)
    assert f"glove.6B.50d.txt.gz not found in {clean_env / 'root' / 'embeddings'}" in message
    assert "glove.6B.50d.txt.gz is glove.6B.50d.txt of https://nlp.stanford.edu/data/glove.6B.zip, gzipped" in message
    assert "NLPSEQ_DATA" in message and "download failed" not in message

    def offline(url, timeout):
        raise OSError("no network")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", offline)
    with pytest.raises(NlpseqError, match="download failed: https://nlp.stanford.edu/data/glove.6B.zip: no network"):
        resolve_path(GLOVE, clean_env / "root", download=True)
    assert not (clean_env / "root").exists() and not list((clean_env / "cache").rglob("*.part"))


def test_a_glove_model_without_the_vectors_stops_before_training(sentiment_config, clean_env):
    cfg = sentiment_config("model=classifier_glove")
    with pytest.raises(NlpseqError, match=r"glove.6B.50d.txt.gz not found in .*glove.6B.zip"):
        TASKS["sentiment"].from_config(cfg)


@pytest.mark.skipif(not (SHARED_DATA / GLOVE).exists(), reason="../shared/data/embeddings is not present")
def test_the_shared_glove_file_is_the_official_member():
    digest = hashlib.md5()
    with gzip.open(SHARED_DATA / GLOVE, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    assert digest.hexdigest() == GLOVE_MD5 == MANIFEST["glove6b50d"]["files"]["glove.6B.50d.txt.gz"][1]
    assert MANIFEST["glove6b50d"]["archive"][0] == "https://nlp.stanford.edu/data/glove.6B.zip"
