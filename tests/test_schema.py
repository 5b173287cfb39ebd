"""The declared config schema (nlpseq/schema.py): complete, silent on good configs, one clear line on bad ones."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from nlpseq import schema
from nlpseq.data.labeled import READERS, LabeledText, split_off
from nlpseq.data.spm import MODEL_TYPES
from nlpseq.data.tokenizers import TOKENIZERS, TRUNCATIONS
from nlpseq.errors import ConfigError
from nlpseq.modules.attention import ATTENTIONS
from nlpseq.modules.embeddings import CHAR_ENCODERS
from nlpseq.modules.encoders import CELLS
from nlpseq.modules.pooling import POOLINGS
from nlpseq.schema import TASK_INPUTS, check_compatible, undeclared_keys, validate
from tests.conftest import CONF, TINY_MODEL, compose_config


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF) / group).glob("*.yaml"))


def compose_with_choices(overrides: list[str]):
    """The composed config with ``hydra.runtime.choices`` (the preset names), as a Hydra app sees it."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=True)


def refusal(overrides: list[str], choices: bool = False) -> str:
    """The message of the ConfigError that ``validate`` raises for ``overrides``; it must be one line."""
    cfg = compose_with_choices(overrides) if choices else compose_config(overrides)
    with pytest.raises(ConfigError) as error:
        validate(cfg)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_every_combination_is_declared_and_valid_exactly_when_compatible():
    """Every task x model x data preset: no key lacks a rule; validate passes when the presets belong to the task
    and otherwise says so in one line naming task, model and data."""
    for task, model, data in itertools.product(options("task"), options("model"), options("data")):
        given = ["data.path=series.csv", "data.target=OT"] if data == "csv" else []  # data=csv: the user's file
        cfg = compose_with_choices([f"task={task}", f"model={model}", f"data={data}", *given])
        assert undeclared_keys(cfg) == [], (task, model, data)
        if (cfg.model.architecture, cfg.data.kind) == TASK_INPUTS[task]:
            validate(cfg)
        else:
            with pytest.raises(ConfigError, match=f"^task={task} cannot use "):
                validate(cfg)


@pytest.mark.parametrize("overrides", [
    [f"experiment={e}"] for e in options("experiment")] + [[f"task={t}", f"trainer={tr}"]
                                                            for t in options("task") for tr in options("trainer")])
def test_experiments_and_trainer_presets_are_declared_and_valid(overrides):
    cfg = compose_with_choices(overrides)
    assert undeclared_keys(cfg) == []
    validate(cfg)


def test_keys_without_a_rule_are_left_to_hydra():
    """validate refuses no key for being unknown: Hydra does that at composition, with the key's name."""
    cfg = compose_config(["+trainer.some_new_key=0", "+benchmark.windows=5"])
    validate(cfg)
    assert undeclared_keys(cfg) == ["trainer.some_new_key", "benchmark.windows"]


def test_the_schema_knows_the_codes_choices():
    """The schema's word lists are those the code accepts (a new cell or pooling must reach both)."""
    model, data = schema.MODEL, schema.DATA
    assert set(model["tagger"]["cell"].options) == set(model["seq2seq"]["cell"].options) == set(CELLS)
    assert set(model["classifier"]["pooling"].options) == set(POOLINGS)
    assert set(model["seq2seq"]["attention"].options) == set(ATTENTIONS)
    assert set(model["tagger"]["char_encoder"].options) == set(CHAR_ENCODERS)
    assert set(data["labeled"]["tokenizer"].options) == set(TOKENIZERS)
    assert set(data["labeled"]["truncate"].options) == set(TRUNCATIONS)
    assert set(data["labeled"]["format"].options) == set(READERS)
    assert set(data["parallel"]["spm_model_type"].options) == set(MODEL_TYPES)
    assert set(schema.MODEL) == {a for a, _ in TASK_INPUTS.values()} and set(schema.DATA) == {
        k for _, k in TASK_INPUTS.values()}


@pytest.mark.parametrize("overrides", [
    ["task=ner", "model.pretrained_vectors=embeddings/glove.6B.50d.txt.gz", "model.char_encoder=lstm",
     "model.crf=false", "model.cell=gru", "trainer.optimizer=sgd", "trainer.scheduler=inverse_time",
     "trainer.lr_decay=0.05", "trainer.max_steps=7", "trainer.clip_norm=null", "trainer.num_threads=null"],
    ["task=ner", *TINY_MODEL, "trainer.precision=bf16", "trainer.accumulate=4", "trainer.pin_memory=false"],
    ["task=sentiment", "data=imdb", "data.tokenizer=sentencepiece", "data.max_tokens=600", "data.labels=[0,1]"],
    ["task=sentiment", "data=sst5", "model.pooling=attention", "model.cell=gru", "model.char_encoder=null"],
    ["task=sentiment", "data.dev=null", "data.dev_size=10", "model.classifier_hidden_size=64", "device=cpu"],
    ["task=translation", "model.attention=luong", "model.cell=lstm", "data.spm_joint=false",
     "task.teacher_forcing.schedule=inverse_sigmoid", "task.metric=loss", "trainer.scheduler=linear",
     "trainer.warmup_steps=100", "trainer.precision=fp16", "trainer.ema_decay=0.999", "seed=-1"],
])
def test_documented_settings_pass(overrides):
    validate(compose_config(overrides))


@pytest.mark.parametrize("overrides, expected", [
    (["task=ner", "model=seq2seq"], "task=ner cannot use model=seq2seq (model.architecture=seq2seq); it takes a "
                                    "tagger model (e.g. model=tagger) and tagged data (e.g. data=conll2003)"),
    (["task=ner", "data=imdb"], "task=ner cannot use data=imdb (data.kind=labeled); it takes a tagger model"),
    (["task=translation", "model=tagger"], "task=translation cannot use model=tagger (model.architecture=tagger); "
                                           "it takes a seq2seq model (e.g. model=seq2seq) and parallel data"),
    (["task=ner", "experiment=imdb"], "task=ner cannot use model=classifier_glove (model.architecture=classifier) "
                                      "or data=imdb (data.kind=labeled); it takes a tagger model (e.g. model=tagger) "
                                      "and tagged data (e.g. data=conll2003); experiment=imdb is a task=sentiment "
                                      "recipe: leave out task=ner"),
    (["task=sentiment", "model=tagger", "data=conll2003"], "task=sentiment cannot use model=tagger (model.architecture"
                                                           "=tagger) or data=conll2003 (data.kind=tagged); it takes a "
                                                           "classifier model (e.g. model=classifier) and labeled data "
                                                           "(e.g. data=sst2); those are for task=ner"),
])
def test_refused_combinations_name_the_presets(overrides, expected):
    assert refusal(overrides, choices=True).startswith(expected)


def test_refused_combinations_without_hydra_name_the_keys():
    """Composed without Hydra's choices (compose API): the keys and values still say what is wrong."""
    assert refusal(["task=ner", "model=seq2seq"]).startswith("task=ner cannot use model.architecture=seq2seq; ")
    cfg = compose_config(["task=translation", "data=sst2"])
    with pytest.raises(ConfigError, match=r"^task=translation cannot use data=sst2 \(data.kind=labeled\)"):
        check_compatible(cfg, {"data": "sst2"})


def test_unknown_task_lists_the_known_ones():
    assert refusal(["task.name=pos"]) == ("task.name must be one of ner, sentiment, translation, forecast, memory, "
                                          "got 'pos'")


@pytest.mark.parametrize("overrides, expected", [
    (["trainer.num_threads=0"], "trainer.num_threads must be an integer >= 1, 'auto' or null, got 0"),
    (["trainer.lr=abc"], "trainer.lr must be a number > 0, got 'abc'"),
    (["trainer.lr=0"], "trainer.lr must be a number > 0, got 0"),
    (["trainer.lr=true"], "trainer.lr must be a number > 0, got true"),
    (["model.layers=-1"], "model.layers must be an integer >= 1, got -1"),
    (["model.layers=1.5"], "model.layers must be an integer >= 1, got 1.5"),
    (["model.hidden_size=0"], "model.hidden_size must be an integer >= 1, got 0"),
    (["trainer.batch_size=0"], "trainer.batch_size must be an integer >= 1, got 0"),
    (["model.char_kernel_size=4"], "model.char_kernel_size must be an odd integer >= 1, got 4"),
    (["model.dropout=1.5"], "model.dropout must be a number in [0, 1), got 1.5"),
    (["model.word_dropout=1"], "model.word_dropout must be a number in [0, 1), got 1"),
    (["model.cell=transformer"], "model.cell must be one of rnn, lstm, gru, got 'transformer'"),
    (["model.crf=yes"], "model.crf must be one of true, false, got 'yes'"),
    (["trainer.precision=16"], "trainer.precision must be one of 32, bf16, fp16, got 16"),
    (["trainer.precision='32'"], "trainer.precision must be one of 32, bf16, fp16, got '32'"),
    (["trainer.accumulate=0"], "trainer.accumulate must be an integer >= 1, got 0"),
    (["trainer.pin_memory=1"], "trainer.pin_memory must be one of auto, true, false, got 1"),
    (["trainer.optimizer=rmsprop"], "trainer.optimizer must be one of adam, adamw, sgd, got 'rmsprop'"),
    (["trainer.betas=[0.9]"], "trainer.betas must be a list of two numbers in [0, 1), got [0.9]"),
    (["trainer.ema_decay=1.0"], "trainer.ema_decay must be a number in (0, 1) or null, got 1.0"),
    (["trainer.patience=0"], "trainer.patience must be an integer >= 1 or null, got 0"),
    (["trainer.max_steps=0"], "trainer.max_steps must be an integer >= 1 or null, got 0"),
    (["trainer.max_minutes=-5"], "trainer.max_minutes must be a number > 0 or null, got -5"),
    (["trainer.lr_decay=1.5"], "trainer.lr_decay must be a number in (0, 1) with trainer.scheduler=plateau"),
    (["seed=abc"], "seed must be an integer, got 'abc'"),
    (["device=gpu"], "device must be auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    (["data.train=2003"], "data.train must be a file name, got 2003"),
    (["task=sentiment", "model.pooling=sum"],
     "model.pooling must be one of last, mean, max, max+mean, attention, got 'sum'"),
    (["task=sentiment", "model.static_channel=true"], "model.static_channel=true needs model.pretrained_vectors"),
    (["task=sentiment", "data.labels=[1]"], "data.labels must be a list of at least 2 distinct labels, got [1]"),
    (["task=sentiment", "data.label_names=[bad]"], "data.label_names must be one name per label (2, as data.labels)"),
    (["task=sentiment", "data=imdb", "data.dev_size=0"], "data.dev_size must be an integer >= 1 or null, got 0"),
    (["task=sentiment", "data=imdb", "data.dev_size=null"], "data.dev is null, so data.dev_size must be set"),
    (["task=sentiment", "data.dev_size=100"], "data.dev_size=100 would be ignored: data.dev=stsa.binary.dev"),
    (["task=translation", "task.beam=0"], "task.beam must be an integer >= 1, got 0"),
    (["task=translation", "task.teacher_forcing.start=2"], "task.teacher_forcing.start must be a number in [0, 1]"),
    (["task=translation", "model.decoder_layers=0"], "model.decoder_layers must be an integer >= 1, got 0"),
    (["task=translation", "data.spm_character_coverage=0"], "data.spm_character_coverage must be a number in (0, 1]"),
])
def test_bad_values_give_one_line(overrides, expected):
    assert refusal(overrides).startswith(expected)


def test_cuda_device_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert refusal(["device=cuda"]) == ("device=cuda but torch.cuda.is_available() is false on this machine; "
                                        "use device=auto or device=cpu")
    assert refusal(["device=cuda:0"]).startswith("device=cuda:0 but torch.cuda.is_available() is false")
    assert refusal(["trainer.pin_memory=true"]).startswith("trainer.pin_memory=true but torch.cuda.is_available()")
    validate(compose_config(["device=auto", "trainer.pin_memory=auto"]))


def test_cuda_device_beyond_the_count(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    validate(compose_config(["device=cuda:0", "trainer.pin_memory=true"]))
    assert refusal(["device=cuda:1"]).startswith("device=cuda:1 but this machine has 1 CUDA device(s)")


def test_dev_size_larger_than_the_training_file():
    examples = [LabeledText(f"text {i}", "0", i + 1) for i in range(5)]
    for size in (5, 9):
        with pytest.raises(ConfigError) as error:
            split_off(examples, size, seed=0)
        assert str(error.value).startswith(f"data.dev_size={size} but the training file has only 5 examples; ")
    assert [len(part) for part in split_off(examples, 4, seed=0)] == [1, 4]


def test_a_csv_series_names_its_file_and_target():
    assert refusal(["task=forecast", "data=csv"]).startswith("data.path is required with data=csv: data.path=FILE")
    assert refusal(["task=forecast", "data=csv", "data.path=x.csv"]).startswith(
        "data.target is required with data=csv: data.target=COLUMN")
    assert refusal(["task=forecast", "data.borders=[100,50,200]"]) == (
        "data.borders must increase (ends of train, validation, test), got [100, 50, 200]")
