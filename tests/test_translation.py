"""Translation end to end on a made-up word-for-word "German" -> "English" corpus: data, subwords, schedules,
train -> save -> load -> translate, variants, BLEU, the .gz download and the scripts."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import random
from pathlib import Path

import pytest
import torch

import nlpseq
from nlpseq.errors import ConfigError, DataError, NlpseqError
from nlpseq.metrics import translation_scores
from nlpseq.tasks import TASKS
from nlpseq.tasks.translation import teacher_forcing_ratio
from nlpseq.trainer import train
from tests.conftest import compose_config
from tests.test_pipeline import run_script

LEXICON = {"ein": "a", "der": "the", "rot": "red", "groß": "big", "klein": "small", "mann": "man", "frau": "woman",
           "hund": "dog", "kind": "child", "fahrrad": "bike", "buch": "book", "ball": "ball", "fährt": "rides",
           "liest": "reads", "sieht": "sees", "trägt": "carries"}
DETS, ADJECTIVES = ["ein", "der"], ["rot", "groß", "klein"]
NOUNS, VERBS = ["mann", "frau", "hund", "kind", "fahrrad", "buch", "ball"], ["fährt", "liest", "sieht", "trägt"]


def make_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """``det [adj] noun verb det [adj] noun .`` and its word-for-word translation, deterministic for a seed."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = []
        for part in (DETS, ADJECTIVES, NOUNS, VERBS, DETS, ADJECTIVES, NOUNS):
            if part is not ADJECTIVES or rng.random() < 0.5:
                words.append(rng.choice(part))
        out.append((" ".join(words) + " .", " ".join(LEXICON[w] for w in words) + " ."))
    return out


def write_pairs(folder: Path, prefix: str, pairs) -> None:
    (folder / f"{prefix}.de").write_text("".join(de + "\n" for de, _ in pairs), encoding="utf-8")
    (folder / f"{prefix}.en").write_text("".join(en + "\n" for _, en in pairs), encoding="utf-8")


@pytest.fixture
def tiny_multi30k(tmp_path: Path) -> Path:
    """A data root with multi30k/{train,val,test_2016_flickr}.{de,en} of made-up sentence pairs."""
    folder = tmp_path / "data" / "multi30k"
    folder.mkdir(parents=True)
    for prefix, n, seed in (("train", 400, 1), ("val", 40, 2), ("test_2016_flickr", 40, 3)):
        write_pairs(folder, prefix, make_pairs(n, seed))
    return tmp_path / "data"


TINY_SEQ2SEQ = ["model.embedding_dim=32", "model.hidden_size=32", "model.decoder_hidden_size=64",
                "model.attention_size=32", "model.dropout=0.1", "data.spm_vocab_size=100", "trainer.batch_size=16",
                "trainer.eval_batch_size=64", "trainer.progress_bar=false", "trainer.patience=null",
                "trainer.scheduler=none", "trainer.lr=0.01", "task.beam=3"]


@pytest.fixture
def translation_config(tiny_multi30k, tmp_path, monkeypatch):
    monkeypatch.setenv("NLPSEQ_CACHE", str(tmp_path / "cache"))

    def make(*overrides: str):
        return compose_config(["task=translation", f"data.root={tiny_multi30k}", "data.download=false",
                               *TINY_SEQ2SEQ, *overrides])

    return make


def test_teacher_forcing_schedules():
    def ratio(schedule, epoch, k=5.0):
        return teacher_forcing_ratio(dict_cfg(schedule=schedule, start=1.0, end=0.5, k=k), epoch)

    assert [ratio("constant", e) for e in (0, 9)] == [1.0, 1.0]
    assert [ratio("linear", e, k=4) for e in (0, 2, 4, 9)] == [1.0, 0.75, 0.5, 0.5]
    sigmoid = [ratio("inverse_sigmoid", e) for e in range(30)]
    assert all(a > b for a, b in zip(sigmoid, sigmoid[1:])) and 0.5 < sigmoid[-1] < 0.51
    assert sigmoid[0] == pytest.approx(0.5 + 0.5 * 5 / 6)
    with pytest.raises(ConfigError, match="task.teacher_forcing.schedule"):
        ratio("exponential", 0)


def dict_cfg(**values):
    from omegaconf import OmegaConf

    return OmegaConf.create(values)


def test_line_count_mismatch_stops_the_task(translation_config, tiny_multi30k):
    english = tiny_multi30k / "multi30k" / "train.en"
    english.write_text("".join(english.read_text(encoding="utf-8").splitlines(keepends=True)[:-1]), encoding="utf-8")
    with pytest.raises(DataError, match=r"train.en: has 399 lines but .*train.de has 400"):
        TASKS["translation"].from_config(translation_config())


def test_empty_lines_are_skipped_and_long_pairs_dropped(translation_config, tiny_multi30k, caplog):
    folder = tiny_multi30k / "multi30k"
    # three pairs of 18+ words: over 12 subwords however sentencepiece (its version) segments them
    chained = make_pairs(9, 3)
    long = [tuple(" ".join(side) for side in zip(*chained[i:i + 3])) for i in (0, 3, 6)]
    write_pairs(folder, "train", [*make_pairs(30, 1), ("ein mann .", ""), ("", "a man ."), *make_pairs(5, 2), *long])
    with caplog.at_level(logging.INFO):
        task = TASKS["translation"].from_config(translation_config("data.max_length=12"))
    assert len(task.splits["train"]) == 38 and "2 line pairs with an empty side skipped" in caplog.text
    assert all(len(s) <= 13 and len(t) <= 12 for s, t in task._train) and len(task._train) <= 35


@pytest.mark.parametrize("joint", [True, False])
def test_sentencepiece_joint_and_per_language(translation_config, joint):
    task = TASKS["translation"].from_config(translation_config(f"data.spm_joint={joint}", "data.spm_model_type=bpe"))
    assert (task.source is task.target) == joint
    state = task.state()
    assert isinstance(state["source_spm"], bytes) and (state["target_spm"] is None) == joint
    if not joint:  # each side only has its own language's pieces
        assert "▁fährt" in task.source.vocab and "▁fährt" not in task.target.vocab
        assert "▁rides" in task.target.vocab and "▁rides" not in task.source.vocab
    again = TASKS["translation"].from_state(task.cfg, state)
    for old, new in ((task.source, again.source), (task.target, again.target)):
        assert old.vocab == new.vocab and (old.pad_id, old.bos_id, old.eos_id) == (0, 2, 3)
    text = "der klein hund sieht ein rot ball ."
    assert again.source.decode(again.source.encode(text)) == text
    assert again.target.decode(again.target.encode("the dog .") + [again.target.eos_id]) == "the dog ."


def test_train_save_load_translate_round_trip(translation_config, tmp_path, caplog):
    cfg = translation_config("trainer.max_epochs=8")
    task = TASKS["translation"].from_config(cfg)
    assert [len(task.splits[s]) for s in ("train", "dev", "test")] == [400, 40, 40]
    result = train(task, cfg, tmp_path / "run")
    assert result["metric"] == "bleu" and result["best_score"] > 90.0  # a broken model stays far below
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"dev_bleu", "dev_chrf", "dev_loss"} <= set(record) and record["dev_loss"] < 1.0

    raw = torch.load(result["best_checkpoint"], weights_only=True)  # plain data only
    assert raw["task"] == "translation" and isinstance(raw["task_state"]["source_spm"], bytes)
    translator = nlpseq.load(result["best_checkpoint"], task="translation")
    texts = ["ein mann fährt ein fahrrad .", "der klein kind liest ein buch ."]
    expected = ["a man rides a bike .", "the small child reads a book ."]
    assert translator.translate(texts) == expected
    assert translator.translate(texts, beam=1) == expected
    assert translator.translate(texts[0], beam=4, length_penalty=1.0) == expected[:1]
    assert translator.predict(texts) == [{"text": s, "translation": t} for s, t in zip(texts, expected)]

    model = task.build_model()
    model.load_state_dict(raw["model"])
    assert task.translate(model, texts, beam=3)[0] == expected  # the checkpoint alone reproduces the task
    with pytest.raises(NlpseqError, match="input 2 is empty"):
        translator.translate(["ein mann .", "  "])
    with pytest.raises(NlpseqError, match="is a translation model, not a ner model"):
        nlpseq.load(result["best_checkpoint"], task="ner")

    translator.task.cfg.data.max_source_length = 4
    with caplog.at_level(logging.WARNING):
        assert len(translator.translate([" ".join(["ein mann fährt ein fahrrad ."] * 10)])) == 1
    assert "only the first 4 are translated (data.max_source_length)" in caplog.text


@pytest.mark.parametrize("overrides", [
    ("model.attention=none", "model.tie_embeddings=false"),
    ("model.attention=luong", "model.cell=lstm", "model.tie_embeddings=true", "model.input_feeding=false"),
    ("task.metric=loss", "task.teacher_forcing.schedule=linear", "task.teacher_forcing.start=0.5",
     "data.spm_joint=false"),
])
def test_variants_train_a_step(translation_config, tmp_path, overrides):
    cfg = translation_config("trainer.max_steps=2", *overrides)
    result = train(TASKS["translation"].from_config(cfg), cfg, tmp_path)
    assert result["steps"] == 2 and result["metric"] == cfg.task.metric
    assert isinstance(nlpseq.load(result["best_checkpoint"]).translate(["ein hund ."], beam=2)[0], str)


def test_translation_scores_use_sacrebleu_defaults():
    scores = translation_scores(["A man rides a bike.", "The dog."], ["A man rides a bike.", "The dog."])
    assert scores["bleu"] == pytest.approx(100.0) and scores["chrf"] == pytest.approx(100.0)
    assert "tok:13a" in scores["bleu_signature"] and "case:mixed" in scores["bleu_signature"]
    assert "nrefs:1" in scores["chrf_signature"]
    # 13a tokenization splits the final period off; case counts
    assert translation_scores(["A man rides a bike ."], ["A man rides a bike."])["bleu"] == pytest.approx(100.0)
    assert translation_scores(["a man rides a bike ."], ["A man rides a bike."])["bleu"] < 80


def test_gzipped_download_is_decompressed_and_checked(tmp_path, monkeypatch):
    from nlpseq.data import datasets

    text = b"Zwei junge Manner.\n"
    payload = gzip.compress(text)
    monkeypatch.setattr(datasets.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(payload))
    entry = {"folder": "tiny", "description": "a tiny corpus",  # the MD5 is that of the decompressed file
             "files": {"train.de": ("https://example.org/train.de.gz", hashlib.md5(text).hexdigest())}}
    monkeypatch.setitem(datasets.MANIFEST, "tiny", entry)
    folder = datasets.corpus_dir("tiny", tmp_path)
    assert (folder / "train.de").read_bytes() == text

    monkeypatch.setattr(datasets.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(payload[:-6]))
    entry["files"] = {"val.de": entry["files"]["train.de"]}
    with pytest.raises(NlpseqError, match="not a complete gzip file"):
        datasets.corpus_dir("tiny", tmp_path)
    assert not (folder / "val.de").exists() and not list(folder.glob("*.part"))
    multi30k = datasets.MANIFEST["multi30k"]["files"]
    assert len(multi30k) == 6 and all(url.endswith(name + ".gz") for name, (url, _) in multi30k.items())


ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # tiny models: a second thread only contends on a busy machine


def test_scripts_end_to_end(tiny_multi30k, tmp_path):
    run = tmp_path / "run"
    done = run_script("train.py", "task=translation", *TINY_SEQ2SEQ, "trainer.max_steps=40",
                      "data.download=false", f"hydra.run.dir={run}", env_root=tiny_multi30k,
                      extra_env={"NLPSEQ_CACHE": str(tmp_path / "cache"), **ONE_THREAD})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith(f"best checkpoint: {run}/checkpoints/best.pt (dev bleu ")
    best = run / "checkpoints" / "best.pt"

    output = tmp_path / "test.hyp"
    done = run_script("evaluate.py", f"checkpoint={best}", "split=test", "beam=2", f"output={output}",
                      env_root=tiny_multi30k, extra_env=ONE_THREAD)
    assert done.returncode == 0, done.stderr
    assert "BLEU = " in done.stdout and "chrF2 = " in done.stdout and "tok:13a" in done.stdout
    assert len(output.read_text(encoding="utf-8").splitlines()) == 40
    folder = tiny_multi30k / "multi30k"
    done = run_script("evaluate.py", f"checkpoint={best}", f"src={folder}/val.de", f"ref={folder}/val.en",
                      "attention_plot=0", "length_penalty=1.0", f"output={tmp_path}/val.hyp", extra_env=ONE_THREAD)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{folder}/val.de / {folder}/val.en: 40 examples")
    assert (tmp_path / "val.hyp.attention0.png").read_bytes()[:4] == b"\x89PNG"

    source = tmp_path / "source.de"
    source.write_text("ein mann fährt ein fahrrad .\nder hund sieht ein ball .\n", encoding="utf-8")
    done = run_script("predict.py", f"checkpoint={best}", f"input={source}", extra_env=ONE_THREAD)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 2 and done.stderr == ""
    done = run_script("predict.py", f"checkpoint={best}", "interactive=true", "format=jsonl", "beam=1",
                      stdin="ein mann .\n\nder hund .\n", extra_env=ONE_THREAD)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["text"] for r in results] == ["ein mann .", "der hund ."] and done.stderr.count("> ") == 4


def test_checkpoint_of_another_task_is_refused(ner_config, tmp_path):
    cfg = ner_config("trainer.max_steps=1")
    best = train(TASKS["ner"].from_config(cfg), cfg, tmp_path)["best_checkpoint"]
    done = run_script("predict.py", f"checkpoint={best}", "beam=5", stdin="Ein Mann .\n", extra_env=ONE_THREAD)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{best} is a ner model: beam= does not apply to it (it takes none of these options)" in done.stderr
    done = run_script("evaluate.py", f"checkpoint={best}", "src=a.de", "ref=a.en", extra_env=ONE_THREAD)
    assert done.returncode == 1 and "is a ner model: src=, ref= do not apply to it" in done.stderr
