"""``quantize=true``: dynamic int8 quantization of the recurrent and linear layers at prediction time.

Each task trains a tiny model briefly (seconds), then compares the predictions of the checkpoint loaded with
and without quantization: int8 weights change the scores slightly, so most (not all) predictions must agree.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nlpseq
from nlpseq.errors import NlpseqError
from nlpseq.quantize import quantize_dynamic
from nlpseq.tasks import TASKS
from nlpseq.trainer import train
from tests import test_translation
from tests.conftest import make_reviews, make_sentences
from tests.test_pipeline import run_script
from tests.test_translation import ONE_THREAD, make_pairs

# The translation tests' fixtures: a made-up word-for-word corpus and its tiny seq2seq config.
tiny_multi30k, translation_config = test_translation.tiny_multi30k, test_translation.translation_config


def quantized_types(model: nn.Module) -> set[str]:
    """Class names of the dynamically quantized layers of ``model`` (not their weight holders)."""
    return {type(m).__name__ for m in model.modules()
            if type(m).__module__.startswith("torch.ao.nn.quantized.dynamic") and type(m).__name__ != "PackedParameter"}


def float_types(model: nn.Module, types) -> set[str]:
    """Class names of the modules of ``model`` that are exactly one of the float ``types``."""
    return {type(m).__name__ for m in model.modules() if type(m) in types}


def agreement(a: list, b: list) -> float:
    assert len(a) == len(b)
    return sum(x == y for x, y in zip(a, b)) / len(a)


def load_both(path):
    return nlpseq.load(path), nlpseq.load(path, quantize=True)


def check_still_usable(model: nn.Module) -> None:
    """Float parameters remain (the tasks find the device by ``next(model.parameters())``), on the CPU, eval."""
    first = next(model.parameters())
    assert first.device.type == "cpu" and first.dtype == torch.float32 and not model.training


@pytest.fixture
def ner_checkpoint(ner_config, tmp_path):
    cfg = ner_config("trainer.max_steps=80", "trainer.lr=0.01")
    return train(TASKS["ner"].from_config(cfg), cfg, tmp_path / "ner")["best_checkpoint"]


def test_ner_quantized_tags_agree(ner_checkpoint):
    plain, quantized = load_both(ner_checkpoint)
    assert quantized_types(plain.model) == set()
    # The BiLSTM encoder, the CharCNN window and the tag projection are int8; embeddings and the CRF stay float.
    assert quantized_types(quantized.model) == {"LSTM", "Linear"}
    assert float_types(quantized.model, (nn.LSTM, nn.Linear)) == set()
    assert quantized.model.crf is not None and quantized.model.crf.transitions.dtype == torch.float32
    check_still_usable(quantized.model)

    texts = [" ".join(w for w, _ in s) for s in make_sentences(16, seed=11)]
    expected = [tag for r in plain.predict(texts) for tag in r["tags"]]
    got = [tag for r in quantized.predict(texts) for tag in r["tags"]]
    assert agreement(expected, got) >= 0.9
    assert len(set(expected)) > 3  # a model that tags everything O would agree trivially


def test_sentiment_quantized_labels_agree(sentiment_config, tmp_path):
    cfg = sentiment_config("trainer.max_steps=150", "trainer.lr=0.01", "model.cell=gru",
                           "model.classifier_hidden_size=16", "model.pooling=attention", "model.attention_size=8")
    best = train(TASKS["sentiment"].from_config(cfg), cfg, tmp_path)["best_checkpoint"]
    plain, quantized = load_both(best)
    assert quantized_types(quantized.model) == {"GRU", "Linear"}
    assert float_types(quantized.model, (nn.GRU, nn.Linear)) == set()
    check_still_usable(quantized.model)

    texts = [text for _, text in make_reviews(24, seed=11)]
    expected, got = plain.predict(texts), quantized.predict(texts)
    assert agreement([r["label"] for r in expected], [r["label"] for r in got]) >= 0.75
    assert len({r["label"] for r in expected}) == 2
    gaps = [abs(e["probabilities"][n] - g["probabilities"][n])
            for e, g in zip(expected, got) for n in e["probabilities"]]
    assert max(gaps) < 0.05


TRANSLATION_TEXTS = [de for de, _ in make_pairs(12, seed=11)]


@pytest.mark.parametrize("cell, overrides, int8, left_float", [
    ("gru", (), {"GRU", "GRUCell", "Linear"}, set()),
    # nn.RNN has no dynamic quantized version: the encoder stays float, the decoder's RNNCell does not.
    ("rnn", ("model.attention=luong",), {"RNNCell", "Linear"}, {"RNN"}),
])
def test_translation_quantized_outputs_agree(translation_config, tmp_path, cell, overrides, int8, left_float):
    cfg = translation_config("trainer.max_steps=250", f"model.cell={cell}", *overrides)
    best = train(TASKS["translation"].from_config(cfg), cfg, tmp_path)["best_checkpoint"]
    plain, quantized = load_both(best)
    assert quantized_types(quantized.model) == int8
    assert float_types(quantized.model, (nn.RNN, nn.GRU, nn.LSTM, nn.RNNCell, nn.GRUCell, nn.LSTMCell,
                                         nn.Linear)) == left_float
    check_still_usable(quantized.model)

    for beam in (1, 3):
        expected = plain.translate(TRANSLATION_TEXTS, beam=beam)
        assert len(set(expected)) > len(expected) // 2  # varied outputs: a degenerate model would agree trivially
        assert agreement(expected, quantized.translate(TRANSLATION_TEXTS, beam=beam)) >= 0.75


def test_tied_embeddings_keep_the_float_embedding(translation_config, tmp_path):
    cfg = translation_config("trainer.max_steps=250", "model.cell=lstm", "model.tie_embeddings=true")
    best = train(TASKS["translation"].from_config(cfg), cfg, tmp_path)["best_checkpoint"]
    plain, quantized = load_both(best)
    assert plain.model.output.weight is plain.model.tgt_embed.weight
    assert quantized_types(quantized.model) == {"LSTM", "LSTMCell", "Linear"}
    assert type(quantized.model.output).__name__ == "Linear" and quantized_types(quantized.model.output)
    # The target embedding the output layer shared is still the float matrix of the checkpoint.
    embedding = quantized.model.tgt_embed.weight
    assert embedding.dtype == torch.float32 and torch.equal(embedding, plain.model.tgt_embed.weight)
    check_still_usable(quantized.model)

    expected = plain.translate(TRANSLATION_TEXTS)
    assert len(set(expected)) > len(expected) // 2
    assert agreement(expected, quantized.translate(TRANSLATION_TEXTS)) >= 0.75


def test_quantize_copies_and_refuses_other_devices(ner_checkpoint):
    plain = nlpseq.load(ner_checkpoint)
    quantized = quantize_dynamic(plain.model)
    assert quantized is not plain.model and quantized_types(plain.model) == set() and quantized_types(quantized)
    with pytest.raises(NlpseqError, match="quantize=true runs on the CPU only; use device=cpu"):
        quantize_dynamic(plain.model.to("meta"))
    with pytest.raises(NlpseqError, match="quantize=true runs on the CPU only; use device=cpu"):
        nlpseq.load(ner_checkpoint, device="cuda", quantize=True)


def test_scripts_quantize_end_to_end(ner_checkpoint, tiny_conll, tmp_path):
    source = tmp_path / "input.txt"
    texts = [" ".join(w for w, _ in s) for s in make_sentences(8, seed=11)]
    source.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    outputs = {}
    for quantize in ("false", "true"):
        done = run_script("predict.py", f"checkpoint={ner_checkpoint}", f"input={source}", f"quantize={quantize}",
                          extra_env=ONE_THREAD)
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""  # torch's deprecation warnings are kept off the terminal
        outputs[quantize] = [line.split() for line in done.stdout.splitlines() if line]
    assert len(outputs["true"]) == sum(len(t.split()) for t in texts)
    assert [t for t, _ in outputs["true"]] == [t for t, _ in outputs["false"]]
    assert agreement(outputs["false"], outputs["true"]) >= 0.9

    done = run_script("evaluate.py", f"checkpoint={ner_checkpoint}", "split=test", "quantize=true",
                      env_root=tiny_conll, extra_env=ONE_THREAD)
    assert done.returncode == 0, done.stderr
    assert "test: 12 examples" in done.stdout
    done = run_script("predict.py", f"checkpoint={ner_checkpoint}", "quantize=true", "device=cuda",
                      stdin="John left .\n", extra_env=ONE_THREAD)
    assert done.returncode == 1 and "quantize=true runs on the CPU only; use device=cpu" in done.stderr
