"""``nlpseq-export checkpoint=PATH format=onnx output=DIR``: a self-contained ONNX bundle of a trained model.

The bundle is a folder of plain files, read by :mod:`nlpseq.onnx_runtime` without torch::

    manifest.json                        task, graphs (file, input and output names), settings, file names, check
    tagger.onnx                          NER: emissions (batch, time, tags)
    classifier.onnx                      sentiment: logits (batch, classes)
    encoder.onnx, decoder_step.onnx      translation: memory and first state; one step's logits and next state
    words.json, chars.json, labels.json  vocabularies (``Vocabulary.to_dict``)
    crf_transitions.npy, crf_start.npy, crf_end.npy   NER with a CRF: its scores, BIO constraints applied
    tokenizer.model                      sentiment with data.tokenizer=sentencepiece
    source.model, target.model           translation (one subwords.model when data.spm_joint)

Nothing is pickled. Each graph is checked against the PyTorch model on a padded batch of other sizes than the
export example (onnxruntime against torch, largest absolute difference written to the manifest).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

import nlpseq
from nlpseq.checkpoint import load_checkpoint
from nlpseq.errors import NlpseqError
from nlpseq.export_graphs import (
    CHAR_AXES,
    CHAR_INPUTS,
    ClassifierGraph,
    DecoderStepGraph,
    EncoderGraph,
    GraphSpec,
    TaggerGraph,
    export_graph,
    exportable,
    memory_names,
    state_names,
)

BUNDLE_FORMAT, BUNDLE_VERSION = "nlpseq-onnx", 1
FORMATS = ("onnx",)
EXPORTED_TASKS = ("ner", "sentiment", "translation")
MIN_OPSET = 13  # Clip on int64 (the lengths) needs opset 12; 13, 17, 20, 21 checked
TOLERANCE = 1e-3  # a float32 graph differing more from torch is broken, not rounded: the export fails
EXAMPLE_LENGTHS, CHECK_LENGTHS = (7, 4, 2), (9, 1, 5, 3, 6)  # export example and check batch: other sizes


def require_onnx():
    """Import onnx and onnxruntime (the optional extra), or a clear error saying how to install them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise NlpseqError(f"format=onnx needs onnx and onnxruntime ({e.name} is missing): pip install nlpseq[onnx]"
                          ) from None
    return onnx, onnxruntime


def _tokens(itos: list[str], specials: int, lengths: tuple[int, ...], seed: int) -> list[list[str]]:
    """Sentences of ``lengths`` tokens drawn from a vocabulary's words (its specials left out)."""
    words = itos[specials:] or ["x"]
    rng = np.random.default_rng(seed)
    return [[words[int(i)] for i in rng.integers(0, len(words), n)] for n in lengths]


def _char_batch(batch) -> tuple[torch.Tensor, ...]:
    return () if batch.chars is None else (batch.chars.ids, batch.chars.index)


# What a task's builder returns: the graphs, an input batch per graph to check it on (other sizes than its example),
# the plain files ({key: (file name, JSON data | array | bytes)}) and the runtime's settings.
Parts = tuple[list[GraphSpec], list[tuple], dict, dict]


def ner_bundle(predictor) -> Parts:
    """The parts of an NER tagger's bundle."""
    task, model = predictor.task, predictor.model
    uses_chars = model.embedder.chars is not None

    def batch(lengths, seed):
        b = task.make_batch(_tokens(task.words.itos, len(task.words.specials), lengths, seed))
        return (b.words, b.lengths) + (_char_batch(b) if uses_chars else ())

    names = ["words", "lengths"] + (list(CHAR_INPUTS) if uses_chars else [])
    axes = {"words": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "emissions": {0: "batch", 1: "time"},
            **(CHAR_AXES if uses_chars else {})}
    spec = GraphSpec("tagger.onnx", TaggerGraph(exportable(model)), batch(EXAMPLE_LENGTHS, 0), names,
                     ["emissions"], axes)
    files = {"words": ("words.json", task.words.to_dict()), "chars": ("chars.json", task.chars.to_dict()),
             "labels": ("labels.json", task.labels.to_dict())}
    if model.crf is not None:
        trans, start, end = (t.detach().float().numpy() for t in model.crf._scores())
        files.update(crf_transitions=("crf_transitions.npy", trans), crf_start=("crf_start.npy", start),
                     crf_end=("crf_end.npy", end))
    data, trainer = task.cfg.data, task.cfg.trainer
    settings = {"lowercase": bool(data.lowercase), "zero_digits": bool(data.zero_digits), "crf": model.crf is not None,
                "char_features": uses_chars, **_batching(trainer)}
    return [spec], [batch(CHECK_LENGTHS, 1)], files, settings


def sentiment_bundle(predictor) -> Parts:
    """The parts of a sentiment classifier's bundle."""
    task, model = predictor.task, predictor.model

    def batch(lengths, seed):
        tokens = _tokens(task.words.itos, len(task.words.specials), lengths, seed)
        b = task._batch(tokens, [task.words.encode(t) for t in tokens])
        return (b.words, b.lengths) + _char_batch(b)

    names = ["words", "lengths"] + (list(CHAR_INPUTS) if task.uses_chars else [])
    axes = {"words": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "logits": {0: "batch"},
            **(CHAR_AXES if task.uses_chars else {})}
    spec = GraphSpec("classifier.onnx", ClassifierGraph(exportable(model)), batch(EXAMPLE_LENGTHS, 0), names,
                     ["logits"], axes)
    tokenizer = task.tokenizer
    files = {"words": ("words.json", task.words.to_dict()), "chars": ("chars.json", task.chars.to_dict()),
             "labels": ("labels.json", task.labels.to_dict())}
    if tokenizer.spm is not None:
        files["tokenizer_spm"] = ("tokenizer.model", tokenizer.spm.model)
    data = task.cfg.data
    settings = {"tokenizer": tokenizer.kind, "lowercase": tokenizer.lowercase, "max_tokens": data.get("max_tokens"),
                "truncate": str(data.get("truncate") or "head"), "label_names": task.names,
                "char_features": task.uses_chars, **_batching(task.cfg.trainer)}
    return [spec], [batch(CHECK_LENGTHS, 1)], files, settings


def translation_bundle(predictor) -> Parts:
    """The parts of a translation model's bundle: two graphs, the encoder and one decoder step."""
    task, model = predictor.task, exportable(predictor.model)
    states, memories = state_names(model), memory_names(model)
    attention = model.decoder.attention is not None
    encoder = EncoderGraph(model)

    def encoder_batch(lengths, seed):
        rng = np.random.default_rng(seed)
        sources = [[int(i) for i in rng.integers(4, max(len(task.source), 5), n - 1)] + [task.source.eos_id]
                   for n in lengths]
        b = task._batch(sources)
        return b.src, b.src_lengths

    def step_batch(lengths, seed):
        src, src_lengths = encoder_batch(lengths, seed)
        with torch.no_grad():
            out = dict(zip(memories + states, encoder(src, src_lengths)))
        prev = torch.randint(0, len(task.target), (src.size(0),), generator=torch.Generator().manual_seed(seed))
        mask = (torch.arange(src.size(1)).unsqueeze(0) < src_lengths.unsqueeze(1),) if attention else ()
        return (prev,) + tuple(out[n] for n in states + memories) + mask

    rows, timed = {0: "batch"}, {0: "batch", 1: "src_time"}  # beam search: "batch" is batch * beam rows
    step_inputs = ["prev_tokens", *states, *memories] + (["mask"] if attention else [])
    step_outputs = ["logits", "log_probs", *(f"new_{n}" for n in states)]
    axes = {n: (timed if n in ("src", "values", "keys", "mask") else rows)
            for n in ["src", "src_lengths", *step_inputs, *step_outputs]}
    specs = [GraphSpec("encoder.onnx", encoder, encoder_batch(EXAMPLE_LENGTHS, 0), ["src", "src_lengths"],
                       [*memories, *states], axes),
             GraphSpec("decoder_step.onnx", DecoderStepGraph(model), step_batch(EXAMPLE_LENGTHS, 0), step_inputs,
                       step_outputs, axes)]
    source, target = task.source, task.target
    joint = source is target
    files = {"source_spm": ("subwords.model" if joint else "source.model", source.spm.model)}
    if not joint:
        files["target_spm"] = ("target.model", target.spm.model)
    t, data = task.cfg.task, task.cfg.data
    settings = {"joint": joint, "beam": int(t.beam), "length_penalty": float(t.length_penalty),
                "max_length_ratio": float(t.max_length_ratio), "max_length_offset": float(t.max_length_offset),
                "max_source_length": data.get("max_source_length"), "attention": attention,
                "eval_batch_size": int(task.cfg.trainer.eval_batch_size)}
    return specs, [encoder_batch(CHECK_LENGTHS, 1), step_batch(CHECK_LENGTHS, 1)], files, settings


def _batching(trainer) -> dict:
    return {"eval_batch_size": int(trainer.eval_batch_size), "eval_batch_tokens": trainer.get("eval_batch_tokens")}


BUILDERS = {"ner": ner_bundle, "sentiment": sentiment_bundle, "translation": translation_bundle}


def export_bundle(checkpoint: str | Path, output: str | Path, fmt: str = "onnx", opset: int = 17,
                  quantize: bool = False) -> dict:
    """Write the bundle of ``checkpoint`` to the folder ``output`` (created; an existing bundle there is
    replaced, any other non-empty folder refused) and return its manifest. ``quantize`` stores the graphs' weights
    as int8 (onnxruntime dynamic quantization): smaller, faster, slightly different scores."""
    if fmt not in FORMATS:
        raise NlpseqError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if int(opset) < MIN_OPSET:
        raise NlpseqError(f"opset must be >= {MIN_OPSET} (the length arithmetic clips int64 tensors), got {opset}")
    _, ort = require_onnx()
    name = load_checkpoint(checkpoint)["task"]
    if name not in BUILDERS:
        raise NlpseqError(f"format=onnx supports {', '.join(EXPORTED_TASKS)}; {checkpoint} is a {name} model")
    target = _check_output(Path(output))
    predictor = nlpseq.load(checkpoint, device="cpu")
    directory = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(directory, 0o777 & ~umask)  # mkdtemp's folder is private; the bundle gets a new folder's permissions
    try:
        manifest = _write_bundle(directory, checkpoint, name, BUILDERS[name](predictor), opset, quantize, ort)
        if target.exists():
            shutil.rmtree(target)
        directory.rename(target)  # the bundle appears whole or not at all
    finally:
        if directory.exists():
            shutil.rmtree(directory)
    return manifest


def _write_bundle(directory: Path, checkpoint, task: str, parts: Parts, opset: int, quantize: bool, ort) -> dict:
    """Write the graphs and files of ``parts`` (a builder's result), then the manifest; returns the manifest."""
    specs, checks, files, settings = parts
    for file, value in files.values():
        _write_file(directory / file, value)
    graphs, verification = {}, {}
    for spec, check in zip(specs, checks):
        path = export_graph(spec, directory, opset)
        if quantize:
            _quantize(path)
        graphs[Path(spec.file).stem] = spec.manifest()
        verification[spec.file] = _max_difference(spec, path, check, ort)
        if not quantize and verification[spec.file] > TOLERANCE:
            raise NlpseqError(f"{spec.file} differs from the PyTorch model by {verification[spec.file]:.3g} on a "
                              f"test batch (more than {TOLERANCE}): the export is wrong; please report it")
    manifest = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "task": task, "opset": int(opset),
                "quantized": bool(quantize), "checkpoint": str(checkpoint), "graphs": graphs,
                "files": {key: file for key, (file, _) in files.items()}, "settings": settings,
                "max_abs_difference": verification}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def _check_output(target: Path) -> Path:
    """``output=``: a new folder, an empty one or a bundle (replaced); a file or a folder of other things is an
    error, so that an export never deletes what it did not write."""
    if target.exists() and not target.is_dir():
        raise NlpseqError(f"output={target} is a file; expected a folder for the bundle")
    if target.is_dir() and any(target.iterdir()) and not (target / "manifest.json").is_file():
        raise NlpseqError(f"output={target} is a non-empty folder that is not an nlpseq bundle: give a new or "
                          "empty folder")
    if not target.absolute().parent.is_dir():
        raise NlpseqError(f"output={target}: the folder {target.absolute().parent} does not exist")
    return target.absolute()


def _write_file(path: Path, value) -> None:
    """JSON for plain data, ``.npy`` (no pickle) for arrays, raw bytes for sentencepiece models."""
    if isinstance(value, bytes):
        path.write_bytes(value)
    elif isinstance(value, np.ndarray):
        np.save(path, value, allow_pickle=False)
    else:
        path.write_text(json.dumps(value, ensure_ascii=False) + "\n", encoding="utf-8")


def _quantize(path: Path) -> None:
    """Weights of the MatMul, LSTM and Gather (embedding) nodes as int8, activations quantized at run time, in place
    (onnxruntime has no int8 GRU or RNN node: those stay float)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = path.with_suffix(".int8.onnx")
    logging.disable(logging.WARNING)  # onnxruntime.quantization logs advice on the root logger for every tensor
    try:
        quantize_dynamic(str(path), str(tmp), weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)
    tmp.replace(path)


def _max_difference(spec: GraphSpec, path: Path, inputs: tuple, ort) -> float:
    """Largest absolute difference between onnxruntime and torch over every float output of ``spec`` on
    ``inputs`` (the encoder's padded positions included: the encoder zeroes them in both)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    got = session.run(None, {n: t.numpy() for n, t in zip(spec.inputs, inputs)})
    with torch.no_grad():
        expected = spec.module(*inputs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    worst = 0.0
    for a, b in zip(got, expected):
        finite = np.isfinite(b.numpy())
        worst = max(worst, float(np.abs(a[finite] - b.numpy()[finite]).max(initial=0.0)))
    return worst
