"""The declared schema of the training config, checked once at start-up: one clear line for every bad value.

Every key of ``nlpseq/conf/train.yaml`` and of its groups has a rule below: the trainer's keys, the model's keys per
``model.architecture``, the data's keys per ``data.kind`` and the task's keys. :func:`validate` checks types
and ranges (after interpolations are resolved), the few settings that depend on each other, what this machine
can run (``device``), and first of all that task, model and data belong together (:func:`check_compatible`).
Keys without a rule are left alone: Hydra already refuses unknown keys when it composes the config.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nlpseq.config_rules import Choice, Float, Int, List, Rule, Str, show, word
from nlpseq.errors import ConfigError
from nlpseq.loggers import LOGGERS, check_available

# task -> (model.architecture, data.kind) it takes
TASK_INPUTS = {"ner": ("tagger", "tagged"), "sentiment": ("classifier", "labeled"),
               "translation": ("seq2seq", "parallel"), "forecast": ("forecaster", "series"),
               "memory": ("probe", "generated")}
# for the error messages
DATA_EXAMPLES = {"tagged": "conll2003", "labeled": "sst2", "parallel": "multi30k", "series": "etth1",
                 "generated": "adding"}


POSITIVE = Int(ge=1)
BOOL = Choice(True, False)
PROBABILITY = Float(ge=0, lt=1)  # dropouts, label smoothing: 1 would drop (or smooth away) everything
CELL = Choice("rnn", "lstm", "gru")
CHAR_ENCODER = Choice("cnn", "lstm", "cnn+lstm", "none", None)
SPM_MODEL_TYPE = Choice("unigram", "bpe", "char", "word")

TOP: dict[str, Rule] = {
    "seed": Int(),
    "device": Str(pattern=r"auto|cpu|cuda|cuda:\d+|mps", what="auto, cpu, cuda, cuda:N or mps"),
}
TRAINER: dict[str, Rule] = {
    "max_epochs": POSITIVE, "max_steps": Int(ge=1, null=True), "max_minutes": Float(gt=0, null=True),
    "batch_size": POSITIVE, "batch_tokens": Int(ge=1, null=True), "sparse_embeddings": Choice("auto", True, False),
    "eval_batch_size": POSITIVE, "eval_batch_tokens": Int(ge=1, null=True),
    "optimizer": Choice("adam", "adamw", "sgd"), "lr": Float(gt=0), "momentum": Float(ge=0, lt=1),
    "betas": List(item=Float(ge=0, lt=1), size=2, max_size=2, what="a list of two numbers in [0, 1)"),
    "weight_decay": Float(ge=0),
    "scheduler": Choice("none", "plateau", "inverse_time", "linear"),
    "lr_decay": Float(ge=0),  # plateau: in (0, 1), see _check_related
    "lr_patience": Int(ge=0), "warmup_steps": Int(ge=0), "clip_norm": Float(gt=0, null=True),
    "patience": Int(ge=1, null=True), "eval_every_steps": Int(ge=1, null=True), "resume": BOOL,
    "num_threads": Int(ge=1, null=True, also=("auto",)), "progress_bar": BOOL,
    "ema_decay": Float(gt=0, lt=1, null=True), "precision": Choice(32, "bf16", "fp16"), "accumulate": POSITIVE,
    "pin_memory": Choice("auto", True, False), "logger": Choice(*LOGGERS),  # its package: see _check_machine
}
_WORD_MODEL: dict[str, Rule] = {  # the tagger's and the classifier's shared keys
    "embedding_dim": POSITIVE, "pretrained_vectors": Str(null=True, what="a file path"),
    "freeze_pretrained": BOOL, "static_channel": BOOL, "extend_vocab_with_pretrained": BOOL,
    "word_dropout": PROBABILITY, "char_encoder": CHAR_ENCODER, "char_embedding_dim": POSITIVE,
    "char_hidden_size": POSITIVE, "char_kernel_size": Int(ge=1, odd=True), "cell": CELL, "hidden_size": POSITIVE,
    "layers": POSITIVE, "bidirectional": BOOL, "dropout": PROBABILITY, "locked_dropout": BOOL,
}
MODEL: dict[str, dict[str, Rule]] = {  # per model.architecture
    "tagger": _WORD_MODEL | {"singleton_dropout": PROBABILITY, "crf": BOOL, "constrain_bio": BOOL},
    "classifier": _WORD_MODEL | {
        "embedding_dropout": PROBABILITY,
        "pooling": Choice("last", "mean", "max", "max+mean", "attention"), "attention_size": POSITIVE,
        "classifier_hidden_size": Int(ge=1, null=True), "label_smoothing": PROBABILITY},
    "seq2seq": {
        "embedding_dim": POSITIVE, "hidden_size": POSITIVE, "decoder_hidden_size": POSITIVE, "cell": CELL,
        "encoder_layers": POSITIVE, "decoder_layers": POSITIVE, "attention": Choice("bahdanau", "luong", "none"),
        "attention_size": POSITIVE, "dropout": PROBABILITY, "tie_embeddings": BOOL, "input_feeding": BOOL,
        "label_smoothing": PROBABILITY},
    "forecaster": {
        "cell": CELL, "hidden_size": POSITIVE, "layers": POSITIVE, "dropout": PROBABILITY,
        "segment_length": POSITIVE, "channel_independent": BOOL, "channel_embedding": BOOL,
        "instance_norm": Choice("last", "mean", "none"),
        "quantiles": List(item=Float(gt=0, lt=1), size=1, null=True, distinct=True,
                          what="a list of distinct quantiles in (0, 1), e.g. [0.1, 0.5, 0.9]")},
    "probe": {"cell": CELL, "hidden_size": POSITIVE, "layers": POSITIVE, "forget_bias": Float(),
              "recurrent_scale": Float(gt=0)},
}
_CORPUS: dict[str, Rule] = {
    "name": Str(), "root": Str(what="a folder"), "download": BOOL, "train": Str(what="a file name"),
    "dev": Str(what="a file name"), "test": Str(what="a file name"),
}
_VOCABULARY: dict[str, Rule] = {"lowercase": BOOL, "min_freq": POSITIVE, "max_vocab_size": Int(ge=1, null=True)}
SPM_VOCAB_SIZE = Int(ge=4)  # 3 ids are reserved; sentencepiece also needs one per character of the corpus
DATA: dict[str, dict[str, Rule]] = {  # per data.kind
    "tagged": _CORPUS | _VOCABULARY | {"scheme": Choice("iob2", "iob1"), "zero_digits": BOOL},
    "labeled": _CORPUS | _VOCABULARY | {
        "format": Choice("label_first", "jsonl"), "dev": Str(null=True, what="a file name"),
        "dev_size": Int(ge=1, null=True), "dev_seed": Int(),
        "labels": List(size=2, distinct=True, what="a list of at least 2 distinct labels"),
        "label_names": List(size=1, null=True, what="a list of names, one per label"),
        "tokenizer": Choice("whitespace", "regex", "sentencepiece"),
        "spm_vocab_size": SPM_VOCAB_SIZE, "spm_model_type": SPM_MODEL_TYPE, "max_tokens": Int(ge=1, null=True),
        "truncate": Choice("head", "tail", "head_tail")},
    "parallel": _CORPUS | {
        "src_lang": Str(), "tgt_lang": Str(), "spm_joint": BOOL, "spm_vocab_size": SPM_VOCAB_SIZE,
        "spm_model_type": SPM_MODEL_TYPE, "spm_character_coverage": Float(gt=0, le=1),
        "max_length": Int(ge=1, null=True), "max_source_length": Int(ge=1, null=True)},
    "series": {
        "name": Str(), "root": Str(what="a folder"), "download": BOOL, "path": Str(what="a file path"),
        "date_column": Str(what="a column name"), "columns": List(item=Str(), size=1, null=True, distinct=True,
                                                               what="a list of distinct column names"),
        "target": Str(what="a column name"),
        "borders": List(item=Int(ge=1), size=3, max_size=3, null=True,
                        what="a list of three increasing row numbers (ends of train, validation, test)"),
        "season": POSITIVE},
    "generated": {
        "problem": Choice("adding", "copy", "order"), "length": POSITIVE,
        **{f"{split}_{key}": rule for split in ("train", "dev", "test") for key, rule in (("size", POSITIVE),
                                                                                         ("seed", Int()))}},
}
TASK: dict[str, Rule] = {  # the keys a task has (translation's and forecast's)
    "name": Choice(*TASK_INPUTS), "metric": Choice("bleu", "loss", "mse", "mae"),
    "features": Choice("M", "S", "MS"), "input_length": POSITIVE, "horizon": POSITIVE, "loss": Choice("mae", "mse"),
    "teacher_forcing.schedule": Choice("constant", "linear", "inverse_sigmoid"),
    "teacher_forcing.start": Float(ge=0, le=1), "teacher_forcing.end": Float(ge=0, le=1),
    "teacher_forcing.k": Float(gt=0), "beam": POSITIVE, "length_penalty": Float(ge=0),
    "max_length_ratio": Float(gt=0), "max_length_offset": Int(ge=0),
}
_ABSENT = object()


def declared(values: Mapping) -> dict[str, Rule]:
    """Full key -> rule for a config: the model's keys per ``model.architecture``, the data's per ``data.kind``."""
    model, data = values.get("model") or {}, values.get("data") or {}
    groups = {"trainer": TRAINER, "task": TASK,
              "model": {"architecture": Choice(*MODEL), **MODEL.get(model.get("architecture"), {})},
              "data": {"kind": Choice(*DATA), **DATA.get(data.get("kind"), {})}}
    return TOP | {f"{group}.{key}": rule for group, rules in groups.items() for key, rule in rules.items()}


def leaf_keys(values: Mapping, prefix: str = "") -> list[str]:
    """Every full key whose value is not a mapping (a list is a leaf)."""
    return [leaf for key, value in values.items()
            for leaf in (leaf_keys(value, f"{prefix}{key}.") if isinstance(value, Mapping) else [prefix + key])]


def undeclared_keys(cfg: DictConfig | Mapping) -> list[str]:
    """The keys of ``cfg`` (``hydra`` aside) without a rule: the completeness test wants none."""
    values = _plain(cfg)
    return [key for key in leaf_keys(values) if key not in declared(values)]


def _plain(cfg: DictConfig | Mapping) -> dict:
    """Plain containers with every interpolation resolved (a ``ListConfig`` becomes a list), ``hydra`` left out."""
    return {key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
            for key in cfg if key != "hydra"}


def _lookup(values: Mapping, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(values, Mapping) or part not in values:
            return _ABSENT
        values = values[part]
    return values


def _choices(cfg: DictConfig | Mapping, choices: Mapping | None) -> Mapping:
    """The preset of each group (``model: tagger_glove``): ``choices``, else those of the Hydra run that
    composed ``cfg`` (``cfg.hydra``, or the running app's when its task is ``cfg``'s), else none."""
    if choices is None:
        choices = _lookup(cfg, "hydra.runtime.choices")
    if choices is _ABSENT:
        from hydra.core.hydra_config import HydraConfig
        choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
        choices = choices if choices.get("task") == _lookup(cfg, "task.name") else {}
    return choices


def check_compatible(cfg: DictConfig | Mapping, choices: Mapping | None = None) -> None:
    """Refuse a model or data preset of another task (see :data:`TASK_INPUTS`) in one line naming the keys.

    ``choices`` (group -> preset, as Hydra's ``HydraConfig.get().runtime.choices``) lets the line name the
    presets (``model=tagger_glove``); by default they come from the Hydra run, when there is one.
    """
    choices, task = _choices(cfg, choices), _lookup(cfg, "task.name")
    if task not in TASK_INPUTS:
        raise ConfigError(f"task.name must be one of {', '.join(TASK_INPUTS)}, got {show(task)}")
    arch, kind = (None if v is _ABSENT else v for v in (_lookup(cfg, "model.architecture"), _lookup(cfg, "data.kind")))
    want_arch, want_kind = TASK_INPUTS[task]
    wrong = [(f"{group}={choices[group]} ({group}.{key}={word(value)})" if choices.get(group)
              else f"{group}.{key}={word(value)}")
             for group, key, value, want in (("model", "architecture", arch, want_arch),
                                             ("data", "kind", kind, want_kind)) if value != want]
    if not wrong:
        return
    message = (f"task={task} cannot use {' or '.join(wrong)}; it takes a {want_arch} model (e.g. model={want_arch}) "
               f"and {want_kind} data (e.g. data={DATA_EXAMPLES[want_kind]})")
    other = [name for name, inputs in TASK_INPUTS.items() if inputs == (arch, kind)]
    if other and choices.get("experiment"):
        message += f"; experiment={choices['experiment']} is a task={other[0]} recipe: leave out task={task}"
    elif other:
        message += f"; those are for task={other[0]}"
    raise ConfigError(message)


def validate(cfg: DictConfig | Mapping, choices: Mapping | None = None) -> None:
    """Check a composed training config once, at start-up: :func:`check_compatible`, then every declared key's
    type and range, the keys that depend on each other, and what this machine can run. Raises
    :class:`ConfigError` with one line naming the full key, the value and what was expected."""
    check_compatible(cfg, choices)
    values = _plain(cfg)
    for key, rule in declared(values).items():
        value = _lookup(values, key)
        if value is not _ABSENT and not rule.ok(value):
            raise ConfigError(f"{key} must be {rule.expected()}, got {show(value)}")
    _check_related(values["trainer"], values["model"], values["data"])
    if values["task"].get("name") == "forecast":
        _check_forecast(values["task"], values["model"], values["data"])
    _check_machine(values.get("device", "auto"), values["trainer"])


def _check_related(trainer: dict, model: dict, data: dict) -> None:
    """Settings that are fine alone but not together."""
    if trainer.get("scheduler") == "plateau" and not 0 < trainer.get("lr_decay", 0.5) < 1:
        raise ConfigError(f"trainer.lr_decay must be a number in (0, 1) with trainer.scheduler=plateau (the factor "
                          f"the learning rate is multiplied by), got {show(trainer['lr_decay'])}")
    if model.get("static_channel") and not model.get("pretrained_vectors"):
        raise ConfigError("model.static_channel=true needs model.pretrained_vectors (the frozen copy of the vectors "
                          "would be all zeros)")
    if data.get("kind") != "labeled":
        return
    if data.get("dev") is None and data.get("dev_size") is None:
        raise ConfigError(f"data.dev is null, so data.dev_size must be set: {data.get('name')} needs a dev split "
                          "(data.dev_size training examples are held out)")
    if data.get("dev") is not None and data.get("dev_size") is not None:
        raise ConfigError(f"data.dev_size={show(data['dev_size'])} would be ignored: data.dev={data['dev']} is the "
                          "dev file; set data.dev=null to hold out training examples instead")
    names, labels = data.get("label_names"), data.get("labels", ())
    if names is not None and len(names) != len(labels):
        raise ConfigError(f"data.label_names must be one name per label ({len(labels)}, as data.labels), "
                          f"got {show(names)}")


def _check_forecast(task: dict, model: dict, data: dict) -> None:
    """A forecaster's window against its segments, the file and target a CSV needs, and the split borders."""
    for key in ("path", "target"):
        if data.get(key) == "???":
            raise ConfigError(f"data.{key} is required with data={data.get('name')}: "
                              + ("data.path=FILE (a CSV with a header and a date column)" if key == "path"
                                 else "data.target=COLUMN (the variable forecast with task.features=S or MS)"))
    length, segment = task.get("input_length"), model.get("segment_length")
    if isinstance(length, int) and isinstance(segment, int) and length % segment:
        raise ConfigError(f"task.input_length={length} must be a multiple of model.segment_length={segment} (the "
                          "model reads whole segments)")
    borders = data.get("borders")
    if isinstance(borders, list) and sorted(set(borders)) != borders:
        raise ConfigError(f"data.borders must increase (ends of train, validation, test), got {show(borders)}")


def _check_machine(device: str, trainer: dict) -> None:
    """``device``, ``trainer.pin_memory`` and ``trainer.logger`` against what this machine has."""
    import torch

    check_available(trainer.get("logger", "none"))  # a missing optional package stops before any data is read

    instead = "use device=auto or device=cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device} but torch.cuda.is_available() is false on this machine; {instead}")
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        raise ConfigError(f"device={device} but this machine has {torch.cuda.device_count()} CUDA device(s), "
                          f"counted from cuda:0; use device=auto or device=cuda:0")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device=mps but torch.backends.mps.is_available() is false on this machine; {instead}")
    if trainer.get("pin_memory") is True and not torch.cuda.is_available():
        raise ConfigError("trainer.pin_memory=true but torch.cuda.is_available() is false on this machine (pinned "
                          "memory only speeds up copies to a GPU); use trainer.pin_memory=auto or false")
