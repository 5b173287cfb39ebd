"""Issue 11, bad input: every bad file, setting or call ends in one ``error: ...`` line, never a traceback.

The scripts run in this process (``runpy``, as ``python scripts/NAME.py`` would run them, standard input and
output redirected) on the real format-1 checkpoints of ``tests/fixtures``; two run in a child process: the
real interpreter's standard input, and ``train.py`` (it locks its run directory for the process's lifetime).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import os
import runpy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

import nlpseq
from nlpseq.data import datasets
from nlpseq.data.io import read_lines
from nlpseq.errors import DataError, NlpseqError, NotOffered
from nlpseq.tasks import TASKS
from nlpseq.tasks.sentiment import read_corpus
from tests.conftest import make_reviews, make_sentences, write_conll_file
from tests.test_pipeline import ROOT

FIXTURES = Path(__file__).parent / "fixtures"
NER, SENTIMENT, TRANSLATION = (FIXTURES / f"{task}_v1.pt" for task in ("ner", "sentiment", "translation"))
NOT_UTF8 = b"ein mann \xff f\xc3\xa4hrt .\n"  # byte 0xff at column 10


@contextlib.contextmanager
def restored(env_root: Path | None) -> Iterator[None]:
    """Put back what a script run changes in this process: argv, stdin, ``NLPSEQ_DATA``, the root logger (Hydra
    configures it), torch's thread count (``num_threads=auto``) and Hydra's global state; ``NLPSEQ_DATA`` is
    ``env_root`` meanwhile."""
    root = logging.getLogger()
    saved = sys.argv, sys.stdin, os.environ.get("NLPSEQ_DATA"), root.handlers[:], root.level
    threads = torch.get_num_threads()
    os.environ.pop("NLPSEQ_DATA", None)
    if env_root:
        os.environ["NLPSEQ_DATA"] = str(env_root)
    try:
        yield
    finally:
        sys.argv, sys.stdin, data, root.handlers[:], level = saved
        root.setLevel(level)
        torch.set_num_threads(threads)
        os.environ.pop("NLPSEQ_DATA", None)
        if data is not None:
            os.environ["NLPSEQ_DATA"] = data
        GlobalHydra.instance().clear()


def run_inline(script: str, *args: str, stdin: bytes = b"", env_root: Path | None = None) -> SimpleNamespace:
    """``python scripts/<script> ARGS`` in this process: ``returncode``, ``stdout``, ``stderr``. Standard input
    is bytes behind the text layer a C locale gives (undecodable bytes pass as surrogates, not errors)."""
    out, err, code = io.StringIO(), io.StringIO(), 0
    with restored(env_root), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        sys.argv = [str(ROOT / "scripts" / script), *args]
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8", errors="surrogateescape")
        try:
            runpy.run_path(sys.argv[0], run_name="__main__")
        except SystemExit as e:
            code = e.code
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def run_process(script: str, *args: str, stdin: bytes = b"", env_root: Path | None = None) -> SimpleNamespace:
    """``python scripts/<script> ARGS`` in a child process, standard input given as bytes."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(ROOT), "OMP_NUM_THREADS": "1",
           **({"NLPSEQ_DATA": str(env_root)} if env_root else {})}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], input=stdin, capture_output=True,
                          env=env, cwd=ROOT, timeout=300)
    return SimpleNamespace(returncode=done.returncode, stdout=done.stdout.decode("utf-8", "replace"),
                           stderr=done.stderr.decode("utf-8", "replace"))


def one_error(done: SimpleNamespace, expected: str) -> str:
    """Assert exit status 1, no traceback and exactly one ``error:`` line, which contains ``expected``."""
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert len(errors) == 1 and expected in errors[0], done.stderr
    return errors[0]


def conll_root(tmp_path: Path, *names: str) -> Path:
    """A data root whose conll2003 folder holds only ``names`` (made-up sentences)."""
    folder = tmp_path / "data" / "conll2003"
    folder.mkdir(parents=True)
    for i, name in enumerate(names):
        write_conll_file(folder / name, make_sentences(6, i))
    return tmp_path / "data"


# 1 -----------------------------------------------------------------------------------------------------------
def test_a_gz_file_that_is_plain_truncated_or_corrupt_is_named(tmp_path):
    plain = tmp_path / "input.txt.gz"
    plain.write_text("John left .\n", encoding="utf-8")
    done = run_inline("predict.py", f"checkpoint={NER}", f"input={plain}")
    one_error(done, f"{plain}:1: is not a valid, complete gzip file (it has no gzip header: a plain file named .gz?)")

    test = tmp_path / "test.conll"
    write_conll_file(test, make_sentences(3000, 0))
    whole = gzip.compress(test.read_bytes())
    cut = tmp_path / "cut.conll.gz"
    cut.write_bytes(whole[:len(whole) // 2])
    done = run_inline("evaluate.py", f"checkpoint={NER}", f"file={cut}")
    line = one_error(done, "is not a valid, complete gzip file (it ends before its compressed data does: truncated?)")
    reached = int(line.split(":")[2])
    assert line.startswith(f"error: {cut}:") and reached > 100  # the line where the data ran out

    corrupt = tmp_path / "corrupt.txt.gz"
    corrupt.write_bytes(whole[:200] + bytes(b ^ 0x55 for b in whole[200:400]) + whole[400:])
    with pytest.raises(DataError, match=rf"^{corrupt}:\d+: is not a valid, complete gzip file \(corrupt"):
        list(read_lines(corrupt))


# 2 -----------------------------------------------------------------------------------------------------------
def test_a_directory_where_a_file_is_expected(tmp_path, ner_config):
    expected = f"error: {tmp_path}: is a directory; expected a file"
    assert one_error(run_inline("predict.py", f"checkpoint={NER}", f"input={tmp_path}"), "") == expected
    assert one_error(run_inline("evaluate.py", f"checkpoint={NER}", f"file={tmp_path}"), "") == expected
    ref = tmp_path / "ref.en"
    ref.write_text("a man .\n", encoding="utf-8")
    done = run_inline("evaluate.py", f"checkpoint={TRANSLATION}", f"src={tmp_path}", f"ref={ref}")
    assert one_error(done, "") == expected
    with pytest.raises(DataError, match=f"^{tmp_path}: is a directory; expected a file$"):
        TASKS["ner"].from_config(ner_config(f"model.pretrained_vectors={tmp_path}"))


# 3 -----------------------------------------------------------------------------------------------------------
def test_a_bad_vectors_file_names_its_line(tmp_path, tiny_conll, ner_config):
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("john 0.1 0.2\nparis 1 abc\n", encoding="utf-8")  # 'paris' is a word of the corpus
    done = run_process("train.py", "task=ner", "trainer=debug", "data.download=false", f"hydra.run.dir={tmp_path}/run",
                       f"model.pretrained_vectors={vectors}", env_root=tiny_conll)
    line = one_error(done, "")
    assert line == f"error: {vectors}:2: value 2 after the word is 'abc'; expected a number"
    vectors.write_text("john 0.1 0.2\nzyzzyva 1\nparis 1 2\n", encoding="utf-8")  # a word nobody wants
    with pytest.raises(DataError, match=rf"^{vectors}:2: expected 2 values after the word \(as on the first row\), "
                                        r"got 1$"):
        TASKS["ner"].from_config(ner_config(f"model.pretrained_vectors={vectors}"))


# 4 -----------------------------------------------------------------------------------------------------------
def test_standard_input_that_is_not_utf8(tmp_path):
    for checkpoint in (NER, SENTIMENT):
        done = run_inline("predict.py", f"checkpoint={checkpoint}", "input=-", stdin=b"a good line .\n" + NOT_UTF8)
        one_error(done, "<stdin>:2: is not valid UTF-8 (byte 0xff at column 10)")
        assert done.stdout == ""
    done = run_inline("predict.py", f"checkpoint={NER}", "interactive=true", "format=jsonl",
                      stdin=b"John left .\n" + NOT_UTF8 + b"Mary left .\n")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]  # after the prompts ('> ')
    assert len(errors) == 1 and errors[0].endswith("> error: <stdin>:2: is not valid UTF-8 (byte 0xff at column 10)")
    assert len(done.stdout.splitlines()) == 2  # the lines before and after it


def test_standard_input_that_is_not_utf8_in_a_real_process():
    done = run_process("predict.py", f"checkpoint={TRANSLATION}", stdin=NOT_UTF8)
    one_error(done, "<stdin>:1: is not valid UTF-8 (byte 0xff at column 10)")  # was: a sentencepiece traceback


# 5 -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("script", ["evaluate.py", "predict.py"])
def test_a_missing_checkpoint_setting(script):
    line = one_error(run_inline(script, "split=test" if script == "evaluate.py" else "input=-"), "")
    assert line == ("error: checkpoint= is required: the path of a checkpoint file "
                    "(e.g. checkpoint=runs/ner/.../checkpoints/best.pt)")


# 6 -----------------------------------------------------------------------------------------------------------
def test_the_api_says_which_task_a_model_is_and_what_it_offers():
    tagger = nlpseq.load(NER)
    with pytest.raises(NotOffered, match=r"^this is a ner model: it has no translate\(\); it offers predict\(texts\)$"):
        tagger.translate(["Ein Mann ."])
    assert not hasattr(tagger, "translate") and isinstance(NotOffered("x"), AttributeError)
    with pytest.raises(NlpseqError, match=r"^this is a ner model: beam= does not apply to it \(it takes none of these "
                                          r"options\)$"):
        tagger.predict(["John left ."], beam=5)
    with pytest.raises(NlpseqError, match="^this is a sentiment model: beam= does not apply"):
        nlpseq.load(SENTIMENT).predict(["a good film ."], beam=5)
    translator = nlpseq.load(TRANSLATION)
    with pytest.raises(NlpseqError, match=r"^this is a translation model: length_penalty= does not apply to it "
                                          r"\(it takes beam=\)$"):
        translator.predict(["ein mann ."], length_penalty=0.6)
    with pytest.raises(NotOffered, match=r"it has no probabilities\(\); it offers translate\(texts, beam=, "
                                         r"length_penalty=\) and predict\(texts, beam=\)$"):
        translator.probabilities(["ein mann ."])
    assert translator.predict(["ein mann ."], beam=1)[0]["text"] == "ein mann ."


# 7 -----------------------------------------------------------------------------------------------------------
def test_split_test_needs_only_the_test_files(tmp_path):
    root = conll_root(tmp_path, "test.txt")
    done = run_inline("evaluate.py", f"checkpoint={NER}", "split=test", f"data_root={root}")
    assert done.returncode == 0 and "micro avg" in done.stdout, done.stderr
    (root / "sst").mkdir()
    (root / "sst" / "stsa.binary.test").write_text("".join(f"{label} {text}\n" for label, text in make_reviews(9, 1)))
    done = run_inline("evaluate.py", f"checkpoint={SENTIMENT}", "split=test", env_root=root)
    assert done.returncode == 0 and "accuracy" in done.stdout, done.stderr
    (root / "multi30k").mkdir()
    for lang, text in (("de", "ein mann fährt .\n"), ("en", "a man rides .\n")):
        (root / "multi30k" / f"test_2016_flickr.{lang}").write_text(text * 3, encoding="utf-8")
    done = run_inline("evaluate.py", f"checkpoint={TRANSLATION}", "split=test", "beam=1", env_root=root)
    assert done.returncode == 0 and "BLEU" in done.stdout, done.stderr
    done = run_inline("evaluate.py", f"checkpoint={NER}", "split=dev", f"data_root={root}")
    one_error(done, f"valid.txt not found in {root / 'conll2003'}")

    imdb = OmegaConf.create({"name": "imdb", "root": str(root), "download": False, "format": "jsonl",
                             "train": "train.jsonl.gz", "dev": None, "test": "test.jsonl.gz", "dev_size": 1,
                             "dev_seed": 0, "labels": [0, 1]})
    (root / "imdb").mkdir()
    with gzip.open(root / "imdb" / "test.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write('{"text": "a fine film", "label": 1}\n')
    assert len(read_corpus(imdb, splits=("test",))["test"]) == 1
    with pytest.raises(NlpseqError, match=r"train.jsonl.gz not found"):  # dev is held out of train
        read_corpus(imdb, splits=("dev",))


# 8 -----------------------------------------------------------------------------------------------------------
def test_a_failed_download_leaves_no_empty_folder(tmp_path, monkeypatch):
    absent = (tmp_path / "remote" / "absent.txt").as_uri()
    entry = {"folder": "tiny", "description": "a tiny corpus",
             "files": {"train.txt": (absent, "0" * 32), "test.txt": (absent, "0" * 32)}}
    monkeypatch.setitem(datasets.MANIFEST, "tiny", entry)
    with pytest.raises(NlpseqError, match="download failed"):
        datasets.corpus_dir("tiny", tmp_path / "root")
    assert not (tmp_path / "root").exists()  # neither the corpus folder nor the root it made
    kept = tmp_path / "kept" / "tiny"
    kept.mkdir(parents=True)
    with pytest.raises(NlpseqError, match="download failed"):
        datasets.corpus_dir("tiny", tmp_path / "kept")
    assert kept.is_dir()  # it was there before: not ours to remove
    (kept / "train.txt").write_text("EU B-ORG\n", encoding="utf-8")
    with pytest.raises(NlpseqError, match="test.txt not found"):
        datasets.corpus_dir("tiny", tmp_path / "kept")
    assert (kept / "train.txt").exists()


# 9 -----------------------------------------------------------------------------------------------------------
def test_translation_output_has_a_line_per_source_line(tmp_path):
    src, ref, output = tmp_path / "test.de", tmp_path / "test.en", tmp_path / "test.hyp"
    src.write_text("ein mann .\n\nder hund .\nein buch .\nein ball .\n", encoding="utf-8")
    ref.write_text("a man .\nthe woman .\nthe dog .\n\na ball .\n", encoding="utf-8")
    done = run_inline("evaluate.py", f"checkpoint={TRANSLATION}", f"src={src}", f"ref={ref}", "beam=1",
                      f"output={output}")
    assert done.returncode == 0, done.stderr
    assert f"\n{src} / {ref}: 3 examples\n" in done.stdout
    assert f"{output}: an empty line for each of the 2 line pairs skipped" in done.stdout
    assert "2 line pairs with an empty side skipped" in done.stdout
    lines = output.read_text(encoding="utf-8").split("\n")
    assert len(lines) == 6 and lines[-1] == ""  # 5 lines, each ending in a newline
    assert [bool(line) for line in lines[:5]] == [True, False, True, False, True]


def test_an_output_that_cannot_be_written_is_refused_before_predicting(tmp_path):
    for script, args in (("predict.py", ("input=-",)), ("evaluate.py", ("split=test",))):
        done = run_inline(script, f"checkpoint={NER}", *args, f"output={tmp_path}", stdin=b"EU rejects it .\n")
        one_error(done, f"output={tmp_path} is a directory; expected a file name")
        done = run_inline(script, f"checkpoint={NER}", *args, f"output={tmp_path}/no/such/out.txt",
                          stdin=b"EU rejects it .\n")
        one_error(done, f"the folder {tmp_path}/no/such does not exist")
