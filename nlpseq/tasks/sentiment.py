"""Sentiment classification: SST / IMDB -> recurrent classifier -> accuracy, macro-F1, confusion matrix."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from nlpseq.data.batching import CharBatch, bucket_batches, distinct_characters, move_batch, pad_sequences
from nlpseq.data.datasets import corpus_dir
from nlpseq.data.labeled import READERS, LabeledText, split_off
from nlpseq.data.tokenizers import TextTokenizer, truncate
from nlpseq.data.vocab import Vocabulary
from nlpseq.errors import ConfigError, NlpseqError, check_choice
from nlpseq.inference import PredictorBase, evaluating
from nlpseq.metrics import classification_report, classification_scores, scores_from_confusion
from nlpseq.models.classifier import TextClassifier, build_classifier
from nlpseq.tasks.common import SPLITS, Objective, pretrained_rows

log = logging.getLogger(__name__)


@dataclass
class ClassificationBatch:
    words: torch.Tensor  # (batch, time)
    lengths: torch.Tensor  # (batch,), kept on the host
    chars: CharBatch | None  # distinct words' characters, only for a model with character features
    labels: torch.Tensor | None  # (batch,)
    label_smoothing: float = 0.0
    host_fields = ("lengths",)

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())


def classification_loss(model: TextClassifier, batch: ClassificationBatch) -> torch.Tensor:
    return model.loss(batch.words, batch.lengths, batch.chars, batch.labels, batch.label_smoothing)


class SentimentTask:
    """Owns the tokenizer, vocabularies and (when training) the encoded splits."""

    name = "sentiment"
    metric = "accuracy"
    higher_is_better = True

    def __init__(self, cfg: DictConfig, tokenizer: TextTokenizer, words: Vocabulary, chars: Vocabulary,
                 labels: Vocabulary):
        self.cfg, self.tokenizer, self.words, self.chars, self.labels = cfg, tokenizer, words, chars, labels
        self.uses_chars = cfg.model.get("char_encoder") not in (None, "none")
        names = cfg.data.get("label_names") or list(labels.itos)
        if len(names) != len(labels):
            raise ConfigError(f"data.label_names has {len(names)} names for {len(labels)} labels")
        self.names = [str(n) for n in names]
        self.splits: dict[str, list[LabeledText]] = {}
        self._train: list[tuple[list[str], list[int], int]] = []  # training examples: tokens, word ids, label
        self._vectors: tuple[torch.Tensor, torch.Tensor] | None = None

    # ----- construction -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: DictConfig) -> SentimentTask:
        data = cfg.data
        splits = read_corpus(data)
        tokenizer = TextTokenizer.train(data, [e.text for e in splits["train"]])
        labels = Vocabulary([str(label) for label in data.labels], pad=None, unk=None)
        task = cls(cfg, tokenizer, Vocabulary([]), Vocabulary([]), labels)
        tokens = {name: [task.tokens(e.text) for e in part] for name, part in splits.items()}
        counts = Counter(t for toks in tokens["train"] for t in toks)
        task.words = Vocabulary.from_counter(counts, data.min_freq, data.max_vocab_size)
        task.chars = Vocabulary.from_counter(Counter(c for t in counts for c in t))
        if cfg.model.pretrained_vectors:
            task._vectors = pretrained_rows(cfg, task.words, {t for part in tokens.values() for toks in part
                                                              for t in toks})
        task.splits = splits
        task._train = [(toks, task.words.encode(toks), labels.stoi[e.label])
                       for toks, e in zip(tokens["train"], splits["train"])]
        lengths = [len(t) for t in tokens["train"]]
        log.info("vocabulary: %d words, %d labels; %d/%d/%d examples; training tokens per example: mean %.1f, "
                 "max %d (data.max_tokens=%s)", len(task.words), len(labels),
                 *(len(splits[s]) for s in ("train", "dev", "test")), sum(lengths) / len(lengths), max(lengths),
                 data.max_tokens)
        return task

    @classmethod
    def from_state(cls, cfg: DictConfig, state: dict) -> SentimentTask:
        chars = Vocabulary.from_dict(state["chars"]) if "chars" in state else Vocabulary([])  # older checkpoints
        return cls(cfg, TextTokenizer.from_state(state["tokenizer"]), Vocabulary.from_dict(state["words"]), chars,
                   Vocabulary.from_dict(state["labels"]))

    def state(self) -> dict:
        return {"tokenizer": self.tokenizer.state(), "words": self.words.to_dict(), "chars": self.chars.to_dict(),
                "labels": self.labels.to_dict()}

    def build_model(self) -> TextClassifier:
        model = build_classifier(self.cfg.model, len(self.words), len(self.labels), len(self.chars))
        if self._vectors is not None:
            model.embedder.load_vectors(*self._vectors, freeze=bool(self.cfg.model.freeze_pretrained))
        return model

    def predictor(self, model: TextClassifier) -> SentimentClassifier:
        return SentimentClassifier(self, model)

    # ----- batches ------------------------------------------------------------------------------
    def tokens(self, text: str) -> list[str]:
        """The model's tokens for ``text``: tokenized, then truncated to ``data.max_tokens``."""
        return truncate(self.tokenizer(text), self.cfg.data.max_tokens, self.cfg.data.truncate)

    def train_lengths(self) -> list[int]:
        return [len(ids) for _, ids, _ in self._train]

    def collate(self, indices: list[int], epoch: int) -> ClassificationBatch:
        batch = self._batch(*zip(*(self._train[i] for i in indices)))
        batch.label_smoothing = float(self.cfg.model.label_smoothing)
        return batch

    def objective(self, model: TextClassifier) -> Objective:
        return Objective(model, classification_loss)

    def _batch(self, tokens: list[list[str]], ids: list[list[int]], labels: list[int] | None = None
               ) -> ClassificationBatch:
        chars = None
        if self.uses_chars:
            chars = distinct_characters([[self.chars.encode(t) for t in toks] for toks in tokens], self.chars.pad_id)
        return ClassificationBatch(pad_sequences(ids, self.words.pad_id),
                                   torch.tensor([len(s) for s in ids], dtype=torch.long), chars,
                                   None if labels is None else torch.tensor(labels, dtype=torch.long))

    # ----- evaluation, prediction ---------------------------------------------------------------
    def probabilities(self, model: TextClassifier, texts: list[str]) -> torch.Tensor:
        """Class probabilities ``(len(texts), classes)`` in the input order."""
        tokens = [self.tokens(t) or [self.words.unk] for t in texts]
        ids = [self.words.encode(toks) for toks in tokens]
        out = torch.zeros(len(texts), len(self.labels))
        with evaluating(model) as device:
            for group in bucket_batches([len(s) for s in ids], int(self.cfg.trainer.eval_batch_size), False,
                                        max_tokens=self.cfg.trainer.get("eval_batch_tokens")):
                batch = move_batch(self._batch([tokens[i] for i in group], [ids[i] for i in group]), device)
                out[group] = model(batch.words, batch.lengths, batch.chars).softmax(-1).float().cpu()
        return out

    def evaluate(self, model: TextClassifier, examples: list[LabeledText]) -> tuple[dict, list[str]]:
        """Scores (percent) and the predicted labels."""
        predicted = self.labels.decode(self.probabilities(model, [e.text for e in examples]).argmax(-1).tolist())
        return classification_scores([e.label for e in examples], predicted, self.labels.itos), predicted

    def validation_stats(self, model: TextClassifier, rank: int = 0, world_size: int = 1) -> dict[str, float]:
        """The dev confusion matrix as ``{"gold_i_predicted_j": count}``."""
        dev = self.splits["dev"][rank::world_size]
        predicted = self.probabilities(model, [e.text for e in dev]).argmax(-1).tolist()
        n = len(self.labels)
        counts = {f"gold_{i}_predicted_{j}": 0.0 for i in range(n) for j in range(n)}
        for example, p in zip(dev, predicted):
            counts[f"gold_{self.labels.stoi[example.label]}_predicted_{p}"] += 1
        return counts

    def scores(self, stats: dict[str, float]) -> dict[str, float]:
        n = len(self.labels)
        confusion = [[int(stats[f"gold_{i}_predicted_{j}"]) for j in range(n)] for i in range(n)]
        scores = scores_from_confusion(confusion, self.labels.itos)
        return {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]}

    def report(self, model: TextClassifier, examples: list[LabeledText], output: str | None = None
               ) -> tuple[dict, str]:
        """The scores (accuracy, macro-F1, per class, confusion) and their report; with ``output``, one predicted
        label per line in FILE and the confusion matrix as ``FILE.confusion.png`` beside it."""
        scores, predicted = self.evaluate(model, examples)
        text = classification_report(scores, self.names)
        if output:
            Path(output).write_text("".join(p + "\n" for p in predicted), encoding="utf-8")
            from nlpseq.plots import plot_confusion_matrix

            png = plot_confusion_matrix(scores["confusion"], self.names, f"{output}.confusion.png",
                                        f"{self.cfg.data.name}: accuracy {scores['accuracy']:.2f}")
            text += f"\nconfusion matrix drawn in {png}"
        return scores, text

    def read_split(self, split: str | None = None, file: str | None = None, data_root: str | None = None
                   ) -> list[LabeledText]:
        """A named split of the configured corpus (under ``data_root`` when given), or any file in its format."""
        if file:
            return READERS[self.cfg.data.format](file, [str(label) for label in self.cfg.data.labels])
        check_choice("split", split, SPLITS)
        return read_corpus(self.cfg.data, data_root, (split,))[split]


def read_corpus(data: DictConfig, root: str | None = None, splits: tuple[str, ...] = SPLITS
                ) -> dict[str, list[LabeledText]]:
    """The ``splits`` of ``data`` (under ``root``, default ``data.root``), reading only their files; without a
    dev file, ``data.dev_size`` examples of train chosen with ``data.dev_seed`` are held out as dev (the same
    ones every time), so then dev and train both come from the train file."""
    check_choice("data.format", data.format, READERS)
    sources = list(dict.fromkeys("train" if split == "dev" and not data.dev else split for split in splits))
    folder = corpus_dir(data.name, root or data.root, data.download, [str(data[s]) for s in sources])
    labels = [str(label) for label in data.labels]
    read = {split: READERS[data.format](folder / data[split], labels) for split in sources}
    if "train" in read and not data.dev:
        if not data.dev_size:
            raise ConfigError(f"{data.name} has no dev file: set data.dev_size to hold out part of train")
        read["train"], read["dev"] = split_off(read["train"], int(data.dev_size), int(data.dev_seed))
    return {split: read[split] for split in splits}


class SentimentClassifier(PredictorBase):
    """Inference from a checkpoint: ``nlpseq.load(path).predict(["a gorgeous, witty, seductive movie ."])``."""

    def __init__(self, task: SentimentTask, model: TextClassifier):
        self.task, self.model = task, model.eval()

    def read_examples(self, split: str | None, file: str | None, data_root: str | None) -> list[LabeledText]:
        return self.task.read_split(split, file, data_root)

    def score(self, examples: list[LabeledText], output: str | None) -> tuple[dict, str]:
        return self.task.report(self.model, examples, output)

    def predict(self, texts: list[str], **options) -> list[dict]:
        """Each text -> ``{"text", "label", "probabilities": {label: p}}`` (labels by their ``data.label_names``);
        an empty text is an error, and so is any option."""
        self.check_options(options, self.prediction_options)
        if isinstance(texts, str):
            texts = [texts]
        for i, text in enumerate(texts):
            if not text.strip():
                raise NlpseqError(f"input {i + 1} is empty: nothing to classify")
        probs = self.task.probabilities(self.model, list(texts))
        names = self.task.names
        return [{"text": text, "label": names[int(p.argmax())],
                 "probabilities": {n: round(float(v), 6) for n, v in zip(names, p)}} for text, p in zip(texts, probs)]

    @staticmethod
    def format_text(result: dict) -> str:
        """``label<TAB>name=p name=p ...`` and a newline, for ``predict.py format=text``."""
        return result["label"] + "\t" + " ".join(f"{n}={p:.4f}" for n, p in result["probabilities"].items()) + "\n"
