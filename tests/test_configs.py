"""Every config group composes, and the documented overrides reach the model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from nlpseq.data.datasets import MANIFEST
from nlpseq.models.classifier import build_classifier
from nlpseq.models.forecaster import build_forecaster
from nlpseq.models.memory import build_memory_model
from nlpseq.models.seq2seq import build_seq2seq
from nlpseq.models.tagger import build_tagger
from nlpseq.optim import build_optimizer, build_scheduler
from nlpseq.schema import TASK_INPUTS, validate
from tests.conftest import CONF, compose_config

TASK_OF = {inputs: task for task, inputs in TASK_INPUTS.items()}  # (architecture, kind) -> task


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF) / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["task", "model", "data", "trainer", "experiment"])
def test_every_option_of_every_group_composes(group):
    for option in options(group):
        overrides = [f"{group}={option}"] if group == "experiment" else ["task=ner", f"{group}={option}"]
        cfg = compose_config(overrides)  # an experiment names its own task
        assert OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves


def build_model(model_cfg):
    """The model ``model_cfg.architecture`` names, with tiny vocabularies."""
    if model_cfg.architecture == "tagger":
        return build_tagger(model_cfg, 50, 20, ["O", "B-PER", "I-PER"])
    if model_cfg.architecture == "classifier":
        return build_classifier(model_cfg, 30, 2, num_chars=20)
    if model_cfg.architecture == "forecaster":
        return build_forecaster(model_cfg, 4 * model_cfg.segment_length, 24, 3, [0, 1, 2])
    if model_cfg.architecture == "probe":
        return build_memory_model(model_cfg, 2, 1, per_step=False)
    return build_seq2seq(model_cfg, 40, 30, pad_id=0)


def matching_task(group: str, option: str) -> str:
    """The task a model or data preset is for, from what it declares (``model.architecture``, ``data.kind``)."""
    cfg = compose_config([f"{group}={option}"])
    declared = cfg.model.architecture if group == "model" else cfg.data.kind
    return next(task for task, inputs in TASK_INPUTS.items() if declared in inputs)


@pytest.mark.parametrize("option", options("model"))
def test_every_model_preset_instantiates(option):
    cfg = compose_config([f"task={matching_task('model', option)}", f"model={option}"])
    validate(cfg)
    model = build_model(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize("option", options("data"))
def test_every_data_preset_names_a_known_corpus(option):
    given = ["data.path=series.csv", "data.target=OT"] if option == "csv" else []  # data=csv: the user's file
    cfg = compose_config([f"task={matching_task('data', option)}", f"data={option}", *given])
    validate(cfg)
    if cfg.data.kind == "series":
        assert option == "csv" or cfg.data.path in MANIFEST[cfg.data.name]["files"]
        return
    if cfg.data.kind == "generated":  # no files: the problem is generated from seeds
        assert cfg.data.problem == option
        return
    files = MANIFEST[cfg.data.name]["files"]
    for split in ("train", "dev", "test"):
        name = cfg.data[split]
        if name is not None:
            names = [f"{name}.{cfg.data[side]}" for side in ("src_lang", "tgt_lang")] if cfg.data.kind == "parallel" \
                else [name]
            assert set(names) <= set(files), (option, split, names)


@pytest.mark.parametrize("option", options("trainer"))
@pytest.mark.parametrize("task", options("task"))
def test_every_trainer_preset_instantiates_for_every_task(task, option):
    cfg = compose_config([f"task={task}", f"trainer={option}"])
    validate(cfg)
    model = build_model(cfg.model)
    optimizer = build_optimizer(model, cfg.trainer, torch.device("cpu"))
    scheduler, _ = build_scheduler(optimizer, cfg.trainer, 100)
    assert optimizer.defaults["lr"] == cfg.trainer.lr and (scheduler is None) == (cfg.trainer.scheduler == "none")


@pytest.mark.parametrize("option", options("task") + [f"experiment={e}" for e in options("experiment")])
def test_task_and_experiment_presets_instantiate(option):
    cfg = compose_config([option if "=" in option else f"task={option}"])
    validate(cfg)
    assert TASK_OF[cfg.model.architecture, cfg.data.kind] == cfg.task.name
    build_model(cfg.model)


@pytest.mark.parametrize("overrides", [["task=ner"], ["task=sentiment"], ["task=translation"],
                                       ["experiment=imdb"], ["experiment=sst2_glove"],
                                       ["task=sentiment", "experiment=imdb"], ["task=sentiment", "data=imdb"]])
def test_trainer_debug_is_tiny_for_every_task(overrides):
    """``trainer=debug`` on the command line wins over the task's and the experiment's trainer settings."""
    tc = compose_config([*overrides, "trainer=debug"]).trainer
    assert tc.max_steps <= 20 and tc.batch_size <= 8 and tc.patience is None and tc.max_epochs == 1
    assert tc.eval_batch_size <= 64 and tc.ema_decay is None and not tc.progress_bar


def test_task_trainer_settings_are_a_trainer_preset():
    """Each task selects its trainer preset; command-line trainer keys still win over it."""
    tc = compose_config(["task=translation"]).trainer
    assert (tc.batch_size, tc.patience, tc.max_epochs, tc.max_minutes, tc.clip_norm) == (64, 5, 25, None, 1.0)
    assert compose_config(["task=translation", "trainer.batch_size=16"]).trainer.batch_size == 16
    assert compose_config(["task=ner"]).trainer.patience == 10
    assert compose_config(["task=sentiment"]).trainer.eval_batch_tokens == 1500


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiment_alone_composes_as_its_task(experiment):
    alone = compose_config([f"experiment={experiment}"])
    assert alone.task.name == "sentiment" and alone.model.architecture == "classifier"
    assert alone == compose_config(["task=sentiment", f"experiment={experiment}"])
    assert alone.trainer.ema_decay == 0.999 and alone.model.pretrained_vectors


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
    assert compose_config().data.root == "auto"


@pytest.mark.parametrize("data, classes", [("sst2", 2), ("sst5", 5), ("imdb", 2)])
def test_sentiment_presets(data, classes):
    cfg = compose_config(["task=sentiment", f"data={data}", "model.cell=gru", "model.pooling=attention"])
    assert cfg.data.name == data and len(cfg.data.labels) == len(cfg.data.label_names) == classes
    model = build_classifier(cfg.model, 30, classes)
    assert model.projection.out_features == classes and model.pooler.kind == "attention"
    assert type(model.encoder.forward_rnns[0]).__name__ == "GRU"
