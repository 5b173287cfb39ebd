"""Prediction from an ONNX bundle (written by ``nlpseq-export``) with onnxruntime and NumPy, without torch.

>>> import nlpseq.onnx_runtime
>>> tagger = nlpseq.onnx_runtime.load("ner_bundle")
>>> tagger.predict(["EU rejects German call ."])   # the same dicts as nlpseq.load(checkpoint).predict

The tokenisation is nlpseq's own (:mod:`nlpseq.data.tokenize`, :mod:`nlpseq.data.tokenizers`,
:mod:`nlpseq.data.subwords`, all torch-free), batching, Viterbi and the searches are in :mod:`nlpseq.onnx_decoding`.
Only onnxruntime is optional (``pip install nlpseq[onnx]``); it is imported by :func:`load`.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from nlpseq.data.tokenize import tokenize_with_offsets, word_normaliser
from nlpseq.data.vocab import Vocabulary
from nlpseq.errors import NlpseqError
from nlpseq.onnx_decoding import (
    beam_search,
    char_batch,
    entity_spans,
    greedy_search,
    length_batches,
    pad,
    viterbi,
)

BUNDLE_FORMAT, BUNDLE_VERSION = "nlpseq-onnx", 1  # as nlpseq.export writes them (that module imports torch)


class Bundle:
    """The folder's manifest and files; a missing or unreadable one is an :class:`NlpseqError` naming it."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        manifest = self.directory / "manifest.json"
        if not manifest.is_file():
            raise NlpseqError(f"{self.directory} is not an nlpseq ONNX bundle: {manifest.name} not found "
                              "(write one with nlpseq-export checkpoint=PATH format=onnx output=DIR)")
        try:
            self.manifest = json.loads(manifest.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise NlpseqError(f"{manifest} is not valid JSON: {e}") from None
        if self.manifest.get("format") != BUNDLE_FORMAT or int(self.manifest.get("version", 0)) > BUNDLE_VERSION:
            raise NlpseqError(f"{manifest} is not an nlpseq ONNX bundle of version <= {BUNDLE_VERSION}")
        self.task, self.settings = self.manifest["task"], self.manifest["settings"]
        for name in [g["file"] for g in self.manifest["graphs"].values()] + list(self.manifest["files"].values()):
            if not (self.directory / name).is_file():
                raise NlpseqError(f"{self.directory / name} is missing: the bundle is incomplete (export it again)")

    def path(self, key: str) -> Path:
        return self.directory / self.manifest["files"][key]

    def vocabulary(self, key: str) -> Vocabulary:
        return Vocabulary.from_dict(json.loads(self.path(key).read_text(encoding="utf-8")))

    def array(self, key: str) -> np.ndarray:
        return np.load(self.path(key), allow_pickle=False)

    def bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()


class Graph:
    """One onnxruntime session: ``graph(name=array, ...)`` -> ``{output name: array}``."""

    def __init__(self, bundle: Bundle, name: str, threads: int | None, providers: list[str] | None):
        import onnxruntime

        spec = bundle.manifest["graphs"][name]
        self.inputs, self.outputs = spec["inputs"], spec["outputs"]
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        path = bundle.directory / spec["file"]
        try:
            self.session = onnxruntime.InferenceSession(str(path), options,
                                                        providers=providers or ["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types for a corrupt or truncated graph
            raise NlpseqError(f"{path} is not a loadable ONNX graph: {str(e).strip().splitlines()[0]}") from None

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.outputs, self.session.run(None, {n: inputs[n] for n in self.inputs})))


def load(directory: str | Path, threads: int | None = None, providers: list[str] | None = None):
    """The predictor of the bundle in ``directory``: :class:`OnnxTagger`, :class:`OnnxClassifier` or
    :class:`OnnxTranslator`. ``threads``: onnxruntime's intra-op threads (None: its default, every core);
    ``providers``: onnxruntime execution providers (default the CPU)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise NlpseqError("nlpseq.onnx_runtime needs onnxruntime: pip install nlpseq[onnx]") from None
    bundle = Bundle(directory)
    predictors = {"ner": OnnxTagger, "sentiment": OnnxClassifier, "translation": OnnxTranslator}
    if bundle.task not in predictors:
        raise NlpseqError(f"{directory}: a bundle of task {bundle.task!r}, unknown to this nlpseq version")
    return predictors[bundle.task](bundle, lambda name: Graph(bundle, name, threads, providers))


def _texts(texts, what: str) -> list[str]:
    """``texts`` as a list (one string is one text); an empty one is an error naming its 1-based position."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    for i, text in enumerate(texts):
        if not text.strip():
            raise NlpseqError(f"input {i + 1} is empty: nothing to {what}")
    return texts


def _no_options(options: dict, task: str, accepted: str = "none of these options") -> None:
    """The PyTorch predictors' error (:func:`nlpseq.inference.given_options`) for an option ``predict`` lacks."""
    given = [k for k, v in options.items() if v is not None]
    if given:
        verb = "does" if len(given) == 1 else "do"
        raise NlpseqError(f"this is a {task} model: {', '.join(k + '=' for k in given)} {verb} not apply to it "
                          f"(it takes {accepted})")


def _char_inputs(chars: Vocabulary, tokens: list[list[str]]) -> dict[str, np.ndarray]:
    ids, index = char_batch([[chars.encode(t) for t in s] for s in tokens], chars.pad_id)
    return {"char_ids": ids, "char_index": index}


class OnnxTagger:
    """NER from a bundle: ``predict(texts)`` -> ``{"text", "tokens", "tags", "entities"}`` per text."""

    task = "ner"

    def __init__(self, bundle: Bundle, graph):
        s = bundle.settings
        self.bundle, self.settings, self.graph = bundle, s, graph("tagger")
        self.words, self.chars, self.labels = (bundle.vocabulary(k) for k in ("words", "chars", "labels"))
        self.norm = word_normaliser(SimpleNamespace(lowercase=s["lowercase"], zero_digits=s["zero_digits"]))
        self.crf = tuple(bundle.array(k) for k in ("crf_transitions", "crf_start", "crf_end")) if s["crf"] else None

    def tag(self, sentences: list[list[str]]) -> list[list[str]]:
        """Tag tokenized sentences (each at least one token); tag strings in the input order."""
        out: list = [None] * len(sentences)
        s = self.settings
        for group in length_batches([len(x) for x in sentences], s["eval_batch_size"], s["eval_batch_tokens"]):
            tokens = [sentences[i] for i in group]
            lengths = np.array([len(t) for t in tokens], dtype=np.int64)
            inputs = {"words": pad([self.words.encode(self.norm(w) for w in t) for t in tokens], self.words.pad_id),
                      "lengths": lengths, **(_char_inputs(self.chars, tokens) if s["char_features"] else {})}
            emissions = self.graph(**inputs)["emissions"]
            if self.crf is not None:
                paths = viterbi(emissions, lengths, *self.crf)
            else:
                paths = [row[:n].tolist() for row, n in zip(emissions.argmax(-1), lengths)]
            for i, ids in zip(group, paths):
                out[i] = self.labels.decode(ids)
        return out

    def predict(self, texts: list[str], **options) -> list[dict]:
        """As ``EntityTagger.predict``: tokenized by :func:`tokenize_with_offsets`, entity offsets are character
        offsets into the text (end exclusive); an empty text is an error, and so is any option."""
        _no_options(options, self.task)
        texts = [texts] if isinstance(texts, str) else list(texts)
        spans = []
        for i, text in enumerate(texts):
            spans.append(tokenize_with_offsets(text))
            if not spans[-1]:
                raise NlpseqError(f"input {i + 1} is empty: nothing to tag")
        tags = self.tag([[t for t, _, _ in s] for s in spans])
        return [{"text": text, "tokens": [t for t, _, _ in sp], "tags": seq,
                 "entities": [{"type": kind, "start": sp[a][1], "end": sp[b][2], "text": text[sp[a][1]:sp[b][2]]}
                              for kind, a, b in entity_spans(seq)]}
                for text, sp, seq in zip(texts, spans, tags)]


class OnnxClassifier:
    """Sentiment from a bundle: ``predict(texts)`` -> ``{"text", "label", "probabilities": {name: p}}``."""

    task = "sentiment"

    def __init__(self, bundle: Bundle, graph):
        from nlpseq.data.tokenizers import TextTokenizer

        s = bundle.settings
        self.bundle, self.settings, self.graph = bundle, s, graph("classifier")
        self.words, self.chars = bundle.vocabulary("words"), bundle.vocabulary("chars")
        spm = bundle.bytes("tokenizer_spm") if s["tokenizer"] == "sentencepiece" else None
        self.tokenizer = TextTokenizer(s["tokenizer"], s["lowercase"], spm)
        self.names = list(s["label_names"])

    def tokens(self, text: str) -> list[str]:
        from nlpseq.data.tokenizers import truncate

        return truncate(self.tokenizer(text), self.settings["max_tokens"], self.settings["truncate"])

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Class probabilities ``(len(texts), classes)``, float32, in the input order."""
        tokens = [self.tokens(t) or [self.words.unk] for t in texts]
        ids = [self.words.encode(t) for t in tokens]
        out = np.zeros((len(texts), len(self.names)), dtype=np.float32)
        s = self.settings
        for group in length_batches([len(x) for x in ids], s["eval_batch_size"], s["eval_batch_tokens"]):
            inputs = {"words": pad([ids[i] for i in group], self.words.pad_id),
                      "lengths": np.array([len(ids[i]) for i in group], dtype=np.int64),
                      **(_char_inputs(self.chars, [tokens[i] for i in group]) if s["char_features"] else {})}
            logits = self.graph(**inputs)["logits"]
            exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
            out[group] = exp / exp.sum(axis=-1, keepdims=True)
        return out

    def predict(self, texts: list[str], **options) -> list[dict]:
        """As ``SentimentClassifier.predict`` (probabilities rounded to 6 decimals); an empty text is an error,
        and so is any option."""
        _no_options(options, self.task)
        texts = _texts(texts, "classify")
        probs = self.probabilities(texts)
        return [{"text": text, "label": self.names[int(p.argmax())],
                 "probabilities": {n: round(float(v), 6) for n, v in zip(self.names, p)}}
                for text, p in zip(texts, probs)]


class OnnxTranslator:
    """Translation from a bundle: ``translate(texts, beam=, length_penalty=)`` -> strings; ``predict(texts, beam=)``
    -> ``{"text", "translation"}``. ``beam`` and ``length_penalty`` default to the checkpoint's."""

    task = "translation"

    def __init__(self, bundle: Bundle, graph):
        from nlpseq.data.subwords import SubwordCodec

        s = bundle.settings
        self.bundle, self.settings = bundle, s
        self.encoder, self.decoder = graph("encoder"), graph("decoder_step")
        self.source = SubwordCodec(bundle.bytes("source_spm"))
        self.target = self.source if s["joint"] else SubwordCodec(bundle.bytes("target_spm"))
        self.states = [n[len("new_"):] for n in self.decoder.outputs if n.startswith("new_")]

    def step(self, prev: np.ndarray, state: dict, memory: dict) -> tuple[np.ndarray, np.ndarray, dict]:
        """prev ``(rows,)`` -> logits and log-probs ``(rows, vocab)``, the new state."""
        out = self.decoder(prev_tokens=prev, **state, **memory)
        return out["logits"], out["log_probs"], {n: out["new_" + n] for n in self.states}

    def encode_sources(self, texts: list[str]) -> list[list[int]]:
        """Source ids + eos of each text, cut to ``data.max_source_length`` subwords with a warning."""
        return self.source.encode_sources(texts, self.settings["max_source_length"])

    def decode(self, sources: list[list[int]], beam: int, length_penalty: float) -> list[list[int]]:
        """Output ids (no bos / eos) of each source, in the input order: greedy for ``beam <= 1``, else beam."""
        s, out = self.settings, [None] * len(sources)
        bos, eos = self.target.bos_id, self.target.eos_id
        for group in length_batches([len(x) for x in sources], s["eval_batch_size"]):
            lengths = np.array([len(sources[i]) for i in group], dtype=np.int64)
            encoded = self.encoder(src=pad([sources[i] for i in group], self.source.pad_id), src_lengths=lengths)
            state = {n: encoded[n] for n in self.states}
            memory = {n: v for n, v in encoded.items() if n not in state}
            if "mask" in self.decoder.inputs:
                memory["mask"] = np.arange(encoded["values"].shape[1])[None, :] < lengths[:, None]
            limits = np.array([int(s["max_length_ratio"] * (n - 1) + s["max_length_offset"]) for n in lengths])
            if beam <= 1:
                ids = greedy_search(self.step, memory, state, bos, eos, limits)
            else:
                ids = beam_search(self.step, memory, state, bos, eos, int(beam), limits, float(length_penalty))
            for i, seq in zip(group, ids):
                out[i] = seq
        return out

    def translate(self, texts: list[str], beam: int | None = None, length_penalty: float | None = None
                  ) -> list[str]:
        """One detokenized translation per text (an empty text is an error)."""
        texts = _texts(texts, "translate")
        beam = int(self.settings["beam"] if beam is None else beam)
        alpha = float(self.settings["length_penalty"] if length_penalty is None else length_penalty)
        ids = self.decode(self.encode_sources([t.strip() for t in texts]), beam, alpha)
        return [self.target.decode(x) for x in ids]

    def predict(self, texts: list[str], beam: int | None = None, **options) -> list[dict]:
        """Each text -> ``{"text", "translation"}``; an option other than ``beam`` is an error."""
        _no_options(options, self.task, "beam=")
        texts = [texts] if isinstance(texts, str) else list(texts)
        return [{"text": t, "translation": h} for t, h in zip(texts, self.translate(texts, beam))]
