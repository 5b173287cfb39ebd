"""``nlpseq-export format=onnx`` and ``nlpseq.onnx_runtime``: the bundle predicts what the checkpoint predicts.

The committed tiny checkpoints (tests/fixtures/*_v1.pt: a 2-layer BiLSTM-CRF tagger with character CNN, a BiLSTM
classifier, a GRU seq2seq with Bahdanau attention) are exported once per module; variants of other shapes
(char LSTM, softmax tagger, GRU / RNN cells, attention pooling, Luong / no attention, LSTM decoder) get random
weights, which is all parity needs.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

pytest.importorskip("onnxruntime")

import nlpseq  # noqa: E402
import nlpseq.onnx_runtime as onnx_runtime  # noqa: E402
from nlpseq.errors import NlpseqError  # noqa: E402
from nlpseq.export import export_bundle  # noqa: E402
from nlpseq.tasks import TASKS  # noqa: E402
from tests.conftest import make_reviews, make_sentences  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
# Sentences of 1 to 20 tokens: every batch is padded, and the one-token sentence shares its batch with long ones.
NER_TEXTS = [" ".join(w for w, _ in s) for s in make_sentences(20, seed=7)] + [
    "Paris", "John Smith and Mary Jones visited the EU Commission in New York , then Tokyo and Berlin with Anna Berg .",
    "Unseen words like Zyxwv Qwerty appear here ."]
REVIEWS = [text for _, text in make_reviews(24, seed=7)] + ["wonderful", "unknownword another unknown ."]
GERMAN = ["ein mann fährt ein fahrrad .", "der hund sieht ein buch .", "eine frau", "ein hund",
          "ein mann und eine frau sehen einen hund und ein buch und ein fahrrad ."]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    """The three fixtures exported: ``{task: bundle folder}``."""
    root = tmp_path_factory.mktemp("bundles")
    for task in ("ner", "sentiment", "translation"):
        export_bundle(FIXTURES / f"{task}_v1.pt", root / task)
    return {task: root / task for task in ("ner", "sentiment", "translation")}


def variant(task: str, path: Path, data: dict | None = None, tokenizer: dict | None = None, **model) -> Path:
    """The fixture of ``task`` with ``model`` and ``data`` settings (and the sentiment ``tokenizer`` state) changed
    and fresh random weights, saved at ``path``."""
    ckpt = torch.load(FIXTURES / f"{task}_v1.pt", weights_only=True)
    ckpt["config"]["model"].update(model)
    ckpt["config"]["data"].update(data or {})
    ckpt["task_state"].update({"tokenizer": tokenizer} if tokenizer else {})
    torch.manual_seed(0)
    built = TASKS[task].from_state(OmegaConf.create(ckpt["config"]), ckpt["task_state"]).build_model()
    with torch.no_grad():
        for p in built.parameters():  # larger than the default init, so that scores are far from ties
            if not p.requires_grad:  # the static channel's frozen copy: zeros until vectors are loaded
                p.normal_()
            p.mul_(3.0)
    ckpt["model"] = built.state_dict()
    torch.save(ckpt, path)
    return path


def check_probabilities(expected: list[dict], got: list[dict]) -> None:
    assert [e["label"] for e in expected] == [g["label"] for g in got]
    assert [list(e["probabilities"]) for e in expected] == [list(g["probabilities"]) for g in got]
    worst = max(abs(e["probabilities"][k] - g["probabilities"][k]) for e, g in zip(expected, got)
                for k in e["probabilities"])
    assert worst < 1e-4


def test_tagger_bundle_equals_pytorch_on_padded_batches(bundles):
    torch_tagger, onnx_tagger = nlpseq.load(FIXTURES / "ner_v1.pt"), onnx_runtime.load(bundles["ner"], threads=1)
    model = torch_tagger.model
    assert model.encoder.bidirectional and model.encoder.layers == 2 and model.crf is not None
    assert type(model.embedder.chars).__name__ == "CharCNN"
    assert onnx_tagger.predict(NER_TEXTS) == torch_tagger.predict(NER_TEXTS)  # tokens, tags, entity offsets

    # Emissions of a sentence padded in a batch with a long one equal those of the sentence alone: the backward
    # direction starts at each sentence's own last token, not at the padding.
    sentences = [["Paris"], ["Mary", "Jones", "praised", "the", "EU", "Commission", "in", "Tokyo", "."]]
    alone = [onnx_emissions(onnx_tagger, [s])[0] for s in sentences]
    batched = onnx_emissions(onnx_tagger, sentences)
    for one, row, s in zip(alone, batched, sentences):
        assert np.abs(one[:len(s)] - row[:len(s)]).max() < 1e-5
    with torch.no_grad():
        batch = torch_tagger.task.make_batch(sentences)
        expected = model.emissions(batch.words, batch.chars, batch.lengths).numpy()
    assert np.abs(expected[1] - batched[1]).max() < 1e-4 and np.abs(expected[0, :1] - batched[0, :1]).max() < 1e-4


def onnx_emissions(tagger, sentences: list[list[str]]) -> np.ndarray:
    from nlpseq.onnx_decoding import char_batch, pad

    ids, index = char_batch([[tagger.chars.encode(t) for t in s] for s in sentences], tagger.chars.pad_id)
    words = pad([tagger.words.encode(tagger.norm(t) for t in s) for s in sentences], tagger.words.pad_id)
    return tagger.graph(words=words, lengths=np.array([len(s) for s in sentences]), char_ids=ids,
                        char_index=index)["emissions"]


def test_classifier_bundle_probabilities_within_1e4(bundles):
    expected = nlpseq.load(FIXTURES / "sentiment_v1.pt").predict(REVIEWS)
    check_probabilities(expected, onnx_runtime.load(bundles["sentiment"], threads=1).predict(REVIEWS))


def test_translation_bundle_greedy_and_beam_identical(bundles):
    torch_translator = nlpseq.load(FIXTURES / "translation_v1.pt")
    onnx_translator = onnx_runtime.load(bundles["translation"], threads=1)
    for beam in (1, 3):
        assert onnx_translator.translate(GERMAN, beam=beam) == torch_translator.translate(GERMAN, beam=beam)
    assert torch_translator.task.cfg.task.beam == 5  # predict's default: beam search with a length penalty
    assert onnx_translator.predict(GERMAN) == torch_translator.predict(GERMAN)


@pytest.mark.parametrize("task, model", [
    ("ner", {"char_encoder": "cnn+lstm", "crf": False, "cell": "gru", "layers": 1, "static_channel": True}),
    ("ner", {"char_encoder": "none", "cell": "rnn", "bidirectional": False, "constrain_bio": False}),
    ("sentiment", {"cell": "gru", "pooling": "attention", "attention_size": 8, "char_encoder": "cnn",
                   "char_embedding_dim": 6, "char_hidden_size": 6, "classifier_hidden_size": 8, "layers": 2}),
    ("sentiment", {"pooling": "last", "static_channel": True, "char_encoder": "lstm", "char_embedding_dim": 6,
                   "char_hidden_size": 4}),
    ("sentiment", {"pooling": "max+mean", "char_encoder": "none"}),
    ("translation", {"cell": "lstm", "attention": "luong", "decoder_layers": 2, "input_feeding": False,
                     "tie_embeddings": True, "encoder_layers": 2}),
    ("translation", {"cell": "rnn", "attention": "none"}),
])
def test_other_architectures_export_exactly(task, model, tmp_path):
    checkpoint = variant(task, tmp_path / "model.pt", **model)
    export_bundle(checkpoint, tmp_path / "bundle")
    expected, got = nlpseq.load(checkpoint), onnx_runtime.load(tmp_path / "bundle", threads=1)
    if task == "ner":
        assert got.predict(NER_TEXTS) == expected.predict(NER_TEXTS)
    elif task == "sentiment":
        check_probabilities(expected.predict(REVIEWS), got.predict(REVIEWS))
    else:
        for beam in (1, 4):
            assert got.translate(GERMAN, beam=beam) == expected.translate(GERMAN, beam=beam)


@pytest.mark.parametrize("kind", ["sentencepiece", "regex"])
def test_classifier_tokenizers_and_truncation(kind, tmp_path):
    spm = torch.load(FIXTURES / "translation_v1.pt", weights_only=True)["task_state"]["source_spm"]
    tokenizer = {"kind": kind, "lowercase": True, "spm_model": spm if kind == "sentencepiece" else None}
    checkpoint = variant("sentiment", tmp_path / "model.pt", {"max_tokens": 5, "truncate": "head_tail"}, tokenizer)
    export_bundle(checkpoint, tmp_path / "bundle")
    assert sorted(p.name for p in (tmp_path / "bundle").glob("*.model")) == (
        ["tokenizer.model"] if kind == "sentencepiece" else [])
    texts = REVIEWS + ["Ein Mann fährt, ein Hund (sieht) ein Buch!", "O'Neill's 3.5-star, well-made film ..."]
    check_probabilities(nlpseq.load(checkpoint).predict(texts), onnx_runtime.load(tmp_path / "bundle").predict(texts))


def test_the_runtime_does_not_import_torch(bundles):
    code = ("import sys\nimport nlpseq.onnx_runtime as r\n"
            f"print(r.load({str(bundles['ner'])!r}).predict(['John Smith visited Paris .'])[0]['tags'])\n"
            f"print(r.load({str(bundles['sentiment'])!r}).predict(['a great film .'])[0]['label'])\n"
            f"print(r.load({str(bundles['translation'])!r}).predict(['ein hund'])[0]['translation'])\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "['B-PER', 'I-PER', 'O', 'B-LOC', 'O']"


def test_bundle_is_plain_files_and_a_missing_one_is_named(bundles, tmp_path):
    names = sorted(p.name for p in bundles["ner"].iterdir())
    assert names == ["chars.json", "crf_end.npy", "crf_start.npy", "crf_transitions.npy", "labels.json",
                     "manifest.json", "tagger.onnx", "words.json"]
    for npy in bundles["ner"].glob("*.npy"):
        np.load(npy, allow_pickle=False)  # raises on a pickled array
    manifest = json.loads((bundles["ner"] / "manifest.json").read_text())
    assert manifest["task"] == "ner" and manifest["max_abs_difference"]["tagger.onnx"] < 1e-4

    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(bundles["ner"]), str(broken)], check=True)
    (broken / "words.json").unlink()
    with pytest.raises(NlpseqError, match="words.json is missing"):
        onnx_runtime.load(broken)
    (broken / "manifest.json").unlink()
    with pytest.raises(NlpseqError, match="manifest.json not found"):
        onnx_runtime.load(broken)
    corrupt = tmp_path / "corrupt"
    subprocess.run(["cp", "-r", str(bundles["sentiment"]), str(corrupt)], check=True)
    (corrupt / "classifier.onnx").write_bytes(b"not a graph")
    with pytest.raises(NlpseqError, match="classifier.onnx is not a loadable ONNX graph"):
        onnx_runtime.load(corrupt)


def test_output_folder_rules_and_refused_tasks(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(NlpseqError, match="not an nlpseq bundle"):
        export_bundle(FIXTURES / "sentiment_v1.pt", other)
    assert sorted(p.name for p in other.iterdir()) == ["keep.txt"]
    bundle = tmp_path / "bundle"
    export_bundle(FIXTURES / "sentiment_v1.pt", bundle)
    export_bundle(FIXTURES / "sentiment_v1.pt", bundle, quantize=True)  # a bundle is replaced
    assert json.loads((bundle / "manifest.json").read_text())["quantized"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "other"]  # no temporary folder left
    with pytest.raises(NlpseqError, match="format must be one of onnx"):
        export_bundle(FIXTURES / "sentiment_v1.pt", bundle, fmt="tflite")
    with pytest.raises(NlpseqError, match="opset must be >= 13"):
        export_bundle(FIXTURES / "sentiment_v1.pt", bundle, opset=11)

    fake = tmp_path / "forecast.pt"
    torch.save({"format_version": 2, "task": "forecast", "model": {}, "config": {}, "task_state": {}}, fake)
    with pytest.raises(NlpseqError, match="format=onnx supports ner, sentiment, translation"):
        export_bundle(fake, tmp_path / "forecast")


def test_quantized_bundle_mostly_agrees(tmp_path):
    export_bundle(FIXTURES / "ner_v1.pt", tmp_path / "q", quantize=True)
    expected = [t for r in nlpseq.load(FIXTURES / "ner_v1.pt").predict(NER_TEXTS) for t in r["tags"]]
    got = [t for r in onnx_runtime.load(tmp_path / "q").predict(NER_TEXTS) for t in r["tags"]]
    assert sum(a == b for a, b in zip(expected, got)) / len(expected) >= 0.9


def test_missing_onnxruntime_is_a_clear_error(monkeypatch, bundles):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(NlpseqError, match=r"pip install nlpseq\[onnx\]"):
        onnx_runtime.load(bundles["ner"])
    with pytest.raises(NlpseqError, match=r"pip install nlpseq\[onnx\]"):
        export_bundle(FIXTURES / "ner_v1.pt", bundles["ner"].parent / "unused")


def test_runtime_options_and_empty_inputs_as_pytorch(bundles):
    tagger, translator = onnx_runtime.load(bundles["ner"]), onnx_runtime.load(bundles["translation"])
    with pytest.raises(NlpseqError, match="input 2 is empty: nothing to tag"):
        tagger.predict(["Paris", "  "])
    with pytest.raises(NlpseqError, match="beam= does not apply"):
        tagger.predict(["Paris"], beam=3)
    with pytest.raises(NlpseqError, match="length_penalty= does not apply"):
        translator.predict(["ein hund"], length_penalty=1.0)
    assert tagger.predict("Paris")[0]["tokens"] == ["Paris"]


def test_entity_spans_and_batches_equal_the_torch_side_helpers():
    from seqeval.metrics.sequence_labeling import get_entities

    from nlpseq.data.batching import bucket_batches
    from nlpseq.onnx_decoding import entity_spans, length_batches

    rng = random.Random(0)
    tags = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "I-MISC", "B-MISC"]
    for _ in range(500):
        seq = [rng.choice(tags) for _ in range(rng.randint(0, 12))]
        assert entity_spans(seq) == get_entities(seq)
    for _ in range(50):
        lengths = [rng.randint(1, 40) for _ in range(rng.randint(0, 60))]
        for max_tokens in (None, 60, 200):
            assert length_batches(lengths, 8, max_tokens) == bucket_batches(lengths, 8, False, max_tokens=max_tokens)


def test_export_command(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "export.py"), f"checkpoint={FIXTURES / 'ner_v1.pt'}",
                           f"output={tmp_path / 'ner'}", "opset=17"], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert f"ner model exported to {tmp_path / 'ner'}: tagger.onnx (opset 17)" in done.stdout
    assert "Warning" not in done.stderr  # the exporter's known, harmless C++ warnings are held back
    assert (tmp_path / "ner" / "manifest.json").is_file()
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "export.py"), f"checkpoint={FIXTURES / 'ner_v1.pt'}"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300, env={**os.environ})
    assert done.returncode == 1 and done.stderr.strip() == (
        "error: output= is required: the folder to write the bundle to (e.g. output=bundles/ner)")
