"""A few training steps on the real corpora when ../shared/data is present (skipped otherwise)."""

from __future__ import annotations

import nlpseq
from nlpseq.tasks import TASKS
from nlpseq.trainer import train
from tests.conftest import SHARED_DATA, TINY_MODEL, compose_config, requires_shared_data


@requires_shared_data
def test_ner_trains_a_few_steps_on_conll2003(tmp_path):
    cfg = compose_config(["task=ner", f"data.root={SHARED_DATA}", "data.download=false", *TINY_MODEL,
                          "trainer.max_steps=15", "trainer.batch_size=16", "trainer.eval_batch_size=512"])
    task = TASKS["ner"].from_config(cfg)
    assert [len(task.splits[s]) for s in ("train", "dev", "test")] == [14041, 3250, 3453]
    assert sorted(task.labels.itos) == ["B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER", "O"]
    result = train(task, cfg, tmp_path)
    assert result["steps"] == 15 and 0.0 <= result["best_score"] <= 100.0
    tagged = nlpseq.load(result["best_checkpoint"]).predict(["EU rejects German call to boycott British lamb ."])
    assert len(tagged[0]["tags"]) == 9


@requires_shared_data
def test_sentiment_trains_a_few_steps_on_sst2(tmp_path):
    from tests.conftest import TINY_CLASSIFIER

    cfg = compose_config(["task=sentiment", "data=sst2", f"data.root={SHARED_DATA}", "data.download=false",
                          *TINY_CLASSIFIER, "trainer.max_steps=15", "trainer.batch_size=32",
                          "trainer.eval_batch_size=512"])
    task = TASKS["sentiment"].from_config(cfg)
    assert [len(task.splits[s]) for s in ("train", "dev", "test")] == [6920, 872, 1821]
    result = train(task, cfg, tmp_path)
    assert result["steps"] == 15 and 0.0 <= result["best_score"] <= 100.0
    got = nlpseq.load(result["best_checkpoint"]).predict(["a gorgeous , witty , seductive movie ."])
    assert got[0]["label"] in ("negative", "positive")


@requires_shared_data
def test_translation_trains_a_few_steps_on_multi30k(tmp_path, monkeypatch):
    monkeypatch.setenv("NLPSEQ_CACHE", str(tmp_path / "cache"))
    cfg = compose_config(["task=translation", f"data.root={SHARED_DATA}", "data.download=false",
                          "data.spm_model_type=bpe", "data.spm_vocab_size=500", "model.embedding_dim=16",
                          "model.hidden_size=16", "model.decoder_hidden_size=16", "model.attention_size=16",
                          "trainer.max_steps=10", "trainer.batch_size=32", "trainer.eval_batch_size=512",
                          "trainer.progress_bar=false"])
    task = TASKS["translation"].from_config(cfg)
    assert [len(task.splits[s]) for s in ("train", "dev", "test")] == [29000, 1014, 1000]
    assert task.splits["train"][0].target == "Two young, White males are outside near many bushes."
    result = train(task, cfg, tmp_path)
    assert result["steps"] == 10 and 0.0 <= result["best_score"] <= 100.0
    translations = nlpseq.load(result["best_checkpoint"]).translate(["Ein Mann fährt Fahrrad ."], beam=2)
    assert len(translations) == 1 and isinstance(translations[0], str)
