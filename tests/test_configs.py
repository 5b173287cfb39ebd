"""Every config group composes, and the documented overrides reach the model."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from nlpseq.models.classifier import build_classifier
from nlpseq.models.tagger import build_tagger
from tests.conftest import CONF, compose_config


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF) / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["task", "model", "data", "trainer", "experiment"])
def test_every_option_of_every_group_composes(group):
    for option in options(group):
        task = "task=sentiment" if group == "experiment" else "task=ner"
        cfg = compose_config([task, f"{group}={option}"])
        assert OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves


@pytest.mark.parametrize("name", ["evaluate", "predict"])
def test_script_configs_compose(name):
    cfg = compose_config(["checkpoint=x.pt"], name=name)
    assert cfg.checkpoint == "x.pt"


def test_documented_overrides_reach_the_config():
    cfg = compose_config([
        "task=ner", "model.cell=gru", "model.layers=2", "model.bidirectional=false", "model.hidden_size=32",
        "model.dropout=0.1", "model.char_encoder=lstm", "model.crf=false", "model.pretrained_vectors=v.txt",
        "trainer.max_epochs=3", "trainer.max_steps=7", "trainer.batch_size=5", "trainer.lr=0.01",
        "trainer.clip_norm=1.0", "trainer.patience=2", "seed=7"])
    assert (cfg.model.cell, cfg.model.layers, cfg.model.bidirectional, cfg.model.char_encoder) == ("gru", 2, False,
                                                                                                   "lstm")
    assert (cfg.trainer.max_steps, cfg.trainer.batch_size, cfg.trainer.lr, cfg.seed) == (7, 5, 0.01, 7)
    model = build_tagger(cfg.model, 50, 20, ["O", "B-PER", "I-PER"])
    assert model.crf is None and model.encoder.backward_rnns is None and len(model.encoder.forward_rnns) == 2
    assert type(model.encoder.forward_rnns[0]).__name__ == "GRU"


def test_unknown_override_names_the_key():
    with pytest.raises(ConfigCompositionException, match="model.hiddn_size"):
        compose_config(["model.hiddn_size=3"])


def test_data_root_follows_the_environment(monkeypatch):
    monkeypatch.setenv("NLPSEQ_DATA", "/somewhere/else")
    assert compose_config().data.root == "/somewhere/else"
    monkeypatch.delenv("NLPSEQ_DATA")
    assert compose_config().data.root == "data"


@pytest.mark.parametrize("data, classes", [("sst2", 2), ("sst5", 5), ("imdb", 2)])
def test_sentiment_presets(data, classes):
    cfg = compose_config(["task=sentiment", f"data={data}", "model.cell=gru", "model.pooling=attention"])
    assert cfg.data.name == data and len(cfg.data.labels) == len(cfg.data.label_names) == classes
    model = build_classifier(cfg.model, 30, classes)
    assert model.projection.out_features == classes and model.pooler.kind == "attention"
    assert type(model.encoder.forward_rnns[0]).__name__ == "GRU"
