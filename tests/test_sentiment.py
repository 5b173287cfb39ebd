"""Sentiment end to end: pooling ignores padding, train -> save -> load -> predict, variants, the scripts."""

from __future__ import annotations

import json

import pytest
import torch

import nlpseq
from nlpseq.errors import NlpseqError
from nlpseq.metrics import classification_scores
from nlpseq.modules.encoders import RecurrentEncoder
from nlpseq.modules.pooling import POOLINGS, SequencePooler
from nlpseq.tasks import TASKS
from nlpseq.trainer import train
from tests.conftest import TINY_CLASSIFIER
from tests.test_pipeline import run_script


@pytest.mark.parametrize("kind", POOLINGS)
def test_pooling_ignores_padding(kind):
    torch.manual_seed(0)
    encoder = RecurrentEncoder(4, 5, "lstm", bidirectional=True).eval()
    pooler = SequencePooler(kind, encoder.output_size, attention_size=6).eval()
    lengths = torch.tensor([5, 2, 1])
    x = torch.randn(3, 5, 4)
    x[1, 2:] = 50.0  # garbage in the padding must not change anything
    x[2, 1:] = -50.0
    h, final = encoder(x, lengths)
    batched = pooler(h, lengths, final)
    for i, n in enumerate(lengths.tolist()):
        h_i, final_i = encoder(x[i:i + 1, :n], lengths[i:i + 1])
        assert torch.allclose(batched[i], pooler(h_i, lengths[i:i + 1], final_i)[0], atol=1e-6), (kind, i)


def test_pooling_of_known_values():
    x = torch.tensor([[[1.0], [3.0], [-7.0]], [[-2.0], [0.0], [0.0]]])
    lengths = torch.tensor([2, 1])
    assert SequencePooler("max", 1)(x, lengths).tolist() == [[3.0], [-2.0]]
    assert SequencePooler("mean", 1)(x, lengths).tolist() == [[2.0], [-2.0]]
    both = SequencePooler("max+mean", 1)
    assert both.output_size == 2 and both(x, lengths).tolist() == [[3.0, 2.0], [-2.0, -2.0]]
    weights = SequencePooler("attention", 1).attention(x, torch.tensor([[True, True, False], [True, False, False]]))[1]
    assert weights[0, 2] == 0 and weights[1].tolist() == [1.0, 0.0, 0.0]


def test_classification_scores():
    scores = classification_scores(["a", "a", "b", "b"], ["a", "b", "b", "b"], ["a", "b"])
    assert scores["accuracy"] == 75.0 and scores["confusion"] == [[1, 1], [0, 2]]
    assert scores["per_class"]["a"] == {"precision": 100.0, "recall": 50.0, "f1": pytest.approx(200 / 3),
                                        "support": 2}
    assert scores["macro_f1"] == pytest.approx((200 / 3 + 80.0) / 2)


def test_train_save_load_predict_round_trip(sentiment_config, tmp_path):
    cfg = sentiment_config("trainer.max_epochs=15", "trainer.lr=0.01")
    task = TASKS["sentiment"].from_config(cfg)
    result = train(task, cfg, tmp_path)
    assert result["best_score"] >= 85.0  # one sentiment word decides; a broken model stays near 50
    raw = torch.load(result["best_checkpoint"], weights_only=True)
    assert raw["task"] == "sentiment" and raw["task_state"]["tokenizer"]["kind"] == "whitespace"

    classifier = nlpseq.load(result["best_checkpoint"])
    texts = ["a wonderful film .", "the plot is boring and dull ."]
    got = classifier.predict(texts)
    assert [r["label"] for r in got] == ["positive", "negative"]
    for r in got:
        assert set(r["probabilities"]) == {"negative", "positive"}
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    model = task.build_model()
    model.load_state_dict(raw["model"])
    assert torch.allclose(task.probabilities(model, texts),
                          torch.tensor([list(r["probabilities"].values()) for r in got]), atol=1e-5)
    with pytest.raises(NlpseqError, match="input 2 is empty"):
        classifier.predict(["fine", " "])


@pytest.mark.parametrize("overrides", [
    ("model.cell=gru", "model.pooling=attention", "model.layers=2", "model.char_encoder=cnn"),
    ("model.cell=rnn", "model.pooling=last", "model.bidirectional=false", "model.classifier_hidden_size=8",
     "model.char_encoder=lstm"),
    ("model.pooling=max+mean", "data.tokenizer=sentencepiece", "data.spm_vocab_size=50", "model.label_smoothing=0.1"),
])
def test_variants_train_a_step(sentiment_config, tmp_path, monkeypatch, overrides):
    monkeypatch.setenv("NLPSEQ_CACHE", str(tmp_path / "cache"))
    cfg = sentiment_config("trainer.max_steps=2", *overrides)
    result = train(TASKS["sentiment"].from_config(cfg), cfg, tmp_path)
    assert result["steps"] == 2
    assert len(nlpseq.load(result["best_checkpoint"]).predict(["a witty film ."])) == 1


def test_pretrained_vectors(sentiment_config, tmp_path):
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("witty 0.5 0.5 0.5 0.5\nboring -0.5 -0.5 -0.5 -0.5\nunseenword 1 1 1 1\n")
    cfg = sentiment_config("trainer.max_steps=1", f"model.pretrained_vectors={vectors}")
    task = TASKS["sentiment"].from_config(cfg)
    model = task.build_model()
    assert cfg.model.embedding_dim == 4 and "witty" in task.words
    assert model.embedder.words.weight[task.words.stoi["boring"]].tolist() == [-0.5] * 4


@pytest.mark.parametrize("config, word", [("sentiment_config", "boring"), ("ner_config", "paris")])
def test_static_channel_stays_fixed(config, word, request, tmp_path):
    vectors = tmp_path / "vectors.txt"
    vectors.write_text(f"{word} -0.5 -0.5 -0.5 -0.5\nzebra 0.5 0.5 0.5 0.5\n")
    cfg = request.getfixturevalue(config)("trainer.max_steps=5", "trainer.lr=0.05",
                                          f"model.pretrained_vectors={vectors}", "model.static_channel=true")
    task = TASKS[cfg.task.name].from_config(cfg)
    result = train(task, cfg, tmp_path / "run")
    weights = torch.load(result["best_checkpoint"], weights_only=True)["model"]
    row = task.words.stoi[word]
    assert weights["embedder.static.weight"][row].tolist() == [-0.5] * 4  # frozen
    assert weights["embedder.words.weight"][row].tolist() != [-0.5] * 4  # fine-tuned
    embedder = nlpseq.load(result["best_checkpoint"]).model.embedder
    assert embedder.output_size == 8 + (embedder.chars.output_size if embedder.chars is not None else 0)


def test_held_out_dev_split(sentiment_config):
    cfg = sentiment_config("data.dev=null", "data.dev_size=10", "data.dev_seed=1")
    task = TASKS["sentiment"].from_config(cfg)
    assert len(task.splits["train"]) == 70 and len(task.splits["dev"]) == 10
    assert task.read_split("dev") == task.splits["dev"] and task.read_split("train") == task.splits["train"]


def test_scripts_end_to_end(tiny_sst, tmp_path):
    run = tmp_path / "run"
    done = run_script("train.py", "task=sentiment", "trainer=debug", "trainer.max_steps=6", *TINY_CLASSIFIER,
                      "data.download=false", f"hydra.run.dir={run}", env_root=tiny_sst)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith(f"best checkpoint: {run}/checkpoints/best.pt (dev accuracy ")
    best = run / "checkpoints" / "best.pt"

    output = tmp_path / "test.labels"
    done = run_script("evaluate.py", f"checkpoint={best}", "split=test", f"output={output}", env_root=tiny_sst)
    assert done.returncode == 0, done.stderr
    assert "accuracy" in done.stdout and "macro-F1" in done.stdout and "confusion matrix" in done.stdout
    labels = output.read_text().splitlines()
    assert len(labels) == 20 and set(labels) <= {"0", "1"}
    assert (tmp_path / "test.labels.confusion.png").read_bytes()[:4] == b"\x89PNG"
    done = run_script("evaluate.py", f"checkpoint={best}", f"file={tiny_sst}/sst/stsa.binary.dev")
    assert done.returncode == 0 and "accuracy" in done.stdout, done.stderr

    done = run_script("predict.py", f"checkpoint={best}", "input=-", stdin="a witty film .\nso dull .\n")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and lines[0].split("\t")[0] in ("negative", "positive") and "positive=" in lines[0]
    done = run_script("predict.py", f"checkpoint={best}", "input=-", "format=jsonl", stdin="a witty film .\n")
    assert set(json.loads(done.stdout)) == {"text", "label", "probabilities"}

    bad = tmp_path / "bad.txt"
    bad.write_text("1 fine .\n2 what .\n")
    done = run_script("evaluate.py", f"checkpoint={best}", f"file={bad}")
    assert done.returncode == 1 and f"{bad}:2: label '2' is not one of 0, 1" in done.stderr
    assert "Traceback" not in done.stderr
