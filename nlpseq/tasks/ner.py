"""Named-entity recognition: CoNLL files -> BiLSTM(-CRF) tagger -> seqeval entity F1."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from seqeval.metrics.sequence_labeling import get_entities

from nlpseq.data.batching import CharBatch, bucket_batches, distinct_characters, move_batch, pad_sequences
from nlpseq.data.conll import TaggedSentence, read_conll, write_conll
from nlpseq.data.datasets import corpus_dir
from nlpseq.data.tokenize import tokenize_with_offsets, word_normaliser
from nlpseq.data.vocab import Vocabulary
from nlpseq.errors import NlpseqError, check_choice
from nlpseq.inference import PredictorBase, evaluating
from nlpseq.metrics import entity_counts, entity_report, entity_scores, entity_scores_from_counts
from nlpseq.models.tagger import SequenceTagger, build_tagger
from nlpseq.tasks.common import SPLITS, Objective, pretrained_rows

log = logging.getLogger(__name__)


@dataclass
class TaggingBatch:
    words: torch.Tensor  # (batch, time)
    chars: CharBatch  # the batch's distinct words' characters and each token's row
    lengths: torch.Tensor  # (batch,), kept on the host
    tags: torch.Tensor | None  # (batch, time)
    host_fields = ("lengths",)

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())


def tagging_loss(model: SequenceTagger, batch: TaggingBatch) -> torch.Tensor:
    return model.loss(batch.words, batch.chars, batch.lengths, batch.tags)


class NerTask:
    """Owns the vocabularies and (when training) the splits; builds the model, loss, metric and predictions."""

    name = "ner"
    metric = "f1"
    higher_is_better = True

    def __init__(self, cfg: DictConfig, words: Vocabulary, chars: Vocabulary, labels: Vocabulary):
        self.cfg, self.words, self.chars, self.labels = cfg, words, chars, labels
        self.splits: dict[str, list[TaggedSentence]] = {}
        self._vectors: tuple[torch.Tensor, torch.Tensor] | None = None
        self._singletons: torch.Tensor | None = None  # training-only: ids of words seen once

    # ----- construction -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: DictConfig) -> NerTask:
        """Read the corpus named by ``cfg.data``, build vocabularies and, if set, pretrained vectors."""
        data = cfg.data
        folder = corpus_dir(data.name, data.root, data.download)
        splits = {split: read_conll(folder / data[split], data.scheme) for split in ("train", "dev", "test")}
        norm = word_normaliser(data)
        counts = Counter(norm(t) for s in splits["train"] for t in s.tokens)
        words = Vocabulary.from_counter(counts, data.min_freq, data.max_vocab_size)
        chars = Vocabulary.from_counter(Counter(c for s in splits["train"] for t in s.tokens for c in t))
        labels = Vocabulary(sorted({t for s in splits["train"] for t in s.tags}), pad=None, unk=None)
        task = cls(cfg, words, chars, labels)
        task.splits = splits
        task._singletons = torch.tensor([words.stoi[w] for w, c in counts.items() if c == 1 and w in words.stoi],
                                        dtype=torch.long)
        if cfg.model.pretrained_vectors:
            task._vectors = pretrained_rows(cfg, words, {norm(t) for part in splits.values() for s in part
                                                         for t in s.tokens})
        log.info("vocabulary: %d words, %d characters, %d tags; %d/%d/%d sentences", len(words), len(chars),
                 len(labels), *(len(splits[s]) for s in ("train", "dev", "test")))
        return task

    @classmethod
    def from_state(cls, cfg: DictConfig, state: dict) -> NerTask:
        return cls(cfg, Vocabulary.from_dict(state["words"]), Vocabulary.from_dict(state["chars"]),
                   Vocabulary.from_dict(state["labels"]))

    def state(self) -> dict:
        """Plain data (lists, dicts, strings) for the checkpoint."""
        return {"words": self.words.to_dict(), "chars": self.chars.to_dict(), "labels": self.labels.to_dict()}

    def predictor(self, model: SequenceTagger) -> EntityTagger:
        return EntityTagger(self, model)

    def build_model(self) -> SequenceTagger:
        model = build_tagger(self.cfg.model, len(self.words), len(self.chars), self.labels.itos)
        if self._singletons is not None:
            model.embedder.mark_singletons(self._singletons)
        if self._vectors is not None:
            model.embedder.load_vectors(*self._vectors, freeze=bool(self.cfg.model.freeze_pretrained))
        return model

    # ----- batches ------------------------------------------------------------------------------
    def make_batch(self, sentences: list[list[str]], tags: list[list[str]] | None = None) -> TaggingBatch:
        norm = word_normaliser(self.cfg.data)
        words = pad_sequences([self.words.encode(norm(t) for t in s) for s in sentences], self.words.pad_id)
        chars = distinct_characters([[self.chars.encode(t) for t in s] for s in sentences], self.chars.pad_id)
        lengths = torch.tensor([len(s) for s in sentences], dtype=torch.long)
        tag_ids = None if tags is None else pad_sequences([self.labels.encode(t) for t in tags], 0)
        return TaggingBatch(words, chars, lengths, tag_ids)

    def train_lengths(self) -> list[int]:
        return [len(s.tokens) for s in self.splits["train"]]

    def collate(self, indices: list[int], epoch: int) -> TaggingBatch:
        sentences = [self.splits["train"][i] for i in indices]
        return self.make_batch([s.tokens for s in sentences], [s.tags for s in sentences])

    def objective(self, model: SequenceTagger) -> Objective:
        return Objective(model, tagging_loss)

    # ----- evaluation, prediction ---------------------------------------------------------------
    def predict_tags(self, model: SequenceTagger, sentences: list[list[str]]) -> list[list[str]]:
        """Tag tokenized sentences; returns tag strings in the input order."""
        out: list[list[str] | None] = [None] * len(sentences)
        order = bucket_batches([len(s) for s in sentences], int(self.cfg.trainer.eval_batch_size), False,
                               max_tokens=self.cfg.trainer.get("eval_batch_tokens"))
        with evaluating(model) as device:
            for group in order:
                batch = move_batch(self.make_batch([sentences[i] for i in group]), device)
                for i, ids in zip(group, model.decode(batch.words, batch.chars, batch.lengths)):
                    out[i] = self.labels.decode(ids)
        return out

    def evaluate(self, model: SequenceTagger, sentences: list[TaggedSentence]) -> tuple[dict, list[list[str]]]:
        """Entity scores (percent) and the predicted tags."""
        predicted = self.predict_tags(model, [s.tokens for s in sentences])
        return entity_scores([s.tags for s in sentences], predicted), predicted

    def validation_stats(self, model: SequenceTagger, rank: int = 0, world_size: int = 1) -> dict[str, float]:
        dev = self.splits["dev"][rank::world_size]
        return entity_counts([s.tags for s in dev], self.predict_tags(model, [s.tokens for s in dev]))

    def scores(self, stats: dict[str, float]) -> dict[str, float]:
        return entity_scores_from_counts(stats)

    def report(self, model: SequenceTagger, sentences: list[TaggedSentence], output: str | None = None
               ) -> tuple[dict[str, float], str]:
        """Entity precision / recall / F1 and seqeval's per-type report; with ``output``, writes ``token gold
        predicted`` lines (conlleval)."""
        scores, predicted = self.evaluate(model, sentences)
        if output:
            write_conll(output, [list(zip(s.tokens, s.tags, p)) for s, p in zip(sentences, predicted)])
        gold = [s.tags for s in sentences]
        return scores, entity_report(gold, predicted) + (
            f"\nentity F1 {scores['f1']:.2f} (precision {scores['precision']:.2f}, recall {scores['recall']:.2f})")

    def read_split(self, split: str | None = None, file: str | None = None, data_root: str | None = None
                   ) -> list[TaggedSentence]:
        """A named split of the configured corpus (under ``data_root`` when given), or any CoNLL file."""
        if file:
            return read_conll(file, self.cfg.data.scheme)
        check_choice("split", split, SPLITS)
        name = str(self.cfg.data[split])
        folder = corpus_dir(self.cfg.data.name, data_root or self.cfg.data.root, self.cfg.data.download, [name])
        return read_conll(folder / name, self.cfg.data.scheme)


class EntityTagger(PredictorBase):
    """Inference from a checkpoint: ``nlpseq.load(path).predict(["EU rejects German call ."])``."""

    def __init__(self, task: NerTask, model: SequenceTagger):
        self.task, self.model = task, model.eval()

    def read_examples(self, split: str | None, file: str | None, data_root: str | None) -> list[TaggedSentence]:
        return self.task.read_split(split, file, data_root)

    def score(self, examples: list[TaggedSentence], output: str | None) -> tuple[dict[str, float], str]:
        return self.task.report(self.model, examples, output)

    def predict(self, texts: list[str], **options) -> list[dict]:
        """Each text -> ``{"text", "tokens", "tags", "entities": [{"type", "start", "end", "text"}]}``.

        Texts are tokenized by :func:`nlpseq.data.tokenize.tokenize_with_offsets`; entity offsets are
        character offsets into the text (end exclusive). An empty text is an error, and so is any option.
        """
        self.check_options(options, self.prediction_options)
        if isinstance(texts, str):
            texts = [texts]
        tokenized = []
        for i, text in enumerate(texts):
            spans = tokenize_with_offsets(text)
            if not spans:
                raise NlpseqError(f"input {i + 1} is empty: nothing to tag")
            tokenized.append(spans)
        tags = self.task.predict_tags(self.model, [[t for t, _, _ in spans] for spans in tokenized])
        results = []
        for text, spans, seq in zip(texts, tokenized, tags):
            entities = [{"type": kind, "start": spans[a][1], "end": spans[b][2], "text": text[spans[a][1]:spans[b][2]]}
                        for kind, a, b in get_entities(seq)]
            results.append({"text": text, "tokens": [t for t, _, _ in spans], "tags": seq, "entities": entities})
        return results

    @staticmethod
    def format_text(result: dict) -> str:
        """``token tag`` lines, one per token, and a blank line (the CoNLL layout), for ``predict.py format=text``."""
        return "".join(f"{t} {g}\n" for t, g in zip(result["tokens"], result["tags"])) + "\n"
