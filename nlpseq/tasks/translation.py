"""Translation: line-aligned parallel text (Multi30k) -> sentencepiece -> recurrent encoder-decoder -> BLEU, chrF."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from nlpseq.data.batching import bucket_batches, move_batch, pad_sequences
from nlpseq.data.datasets import corpus_dir
from nlpseq.data.parallel import ParallelPair, by_line, read_parallel
from nlpseq.data.subwords import SubwordCodec, codecs_from_state, codecs_state, train_codecs
from nlpseq.decoding import beam_search, greedy_search
from nlpseq.errors import ConfigError, NlpseqError, check_choice
from nlpseq.inference import PredictorBase, evaluating
from nlpseq.metrics import translation_report, translation_scores, translation_scores_from_stats, translation_stats
from nlpseq.models.seq2seq import Seq2Seq, build_seq2seq
from nlpseq.tasks.common import SPLITS, Objective

log = logging.getLogger(__name__)

SCHEDULES = ("constant", "linear", "inverse_sigmoid")


@dataclass
class TranslationBatch:
    src: torch.Tensor  # (batch, src_time): source pieces + eos
    src_lengths: torch.Tensor  # (batch,)
    tgt_in: torch.Tensor | None  # (batch, tgt_time): bos + target pieces
    tgt_out: torch.Tensor | None  # (batch, tgt_time): target pieces + eos
    num_tokens: int = 0  # target tokens (eos included), for the trainer's tokens/s
    teacher_forcing: float = 1.0  # this epoch's probability of feeding the gold previous token
    label_smoothing: float = 0.0
    host_fields = ("src_lengths",)


def translation_loss(model: Seq2Seq, batch: TranslationBatch) -> torch.Tensor:
    return model.loss(batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out, batch.label_smoothing,
                      batch.teacher_forcing)


def teacher_forcing_ratio(cfg, epoch: int) -> float:
    """``task.teacher_forcing`` at 0-based ``epoch`` (Bengio et al. 2015's schedules, between start and end):
    constant ``start``; linear from ``start`` to ``end`` over ``k`` epochs; inverse sigmoid
    ``end + (start - end) * k / (k + exp(epoch / k))``."""
    check_choice("task.teacher_forcing.schedule", cfg.schedule, SCHEDULES)
    start, end, k = float(cfg.start), float(cfg.end), float(cfg.k)
    if cfg.schedule == "constant":
        return start
    if cfg.schedule == "linear":
        return start + (end - start) * min(1.0, epoch / max(k, 1e-9))
    return end + (start - end) * k / (k + math.exp(epoch / k))


class TranslationTask:
    """Owns the subword codecs and (when training) the parallel splits."""

    name = "translation"

    def __init__(self, cfg: DictConfig, source: SubwordCodec, target: SubwordCodec):
        self.cfg, self.source, self.target = cfg, source, target
        check_choice("task.metric", cfg.task.metric, ("bleu", "loss"))
        self.metric = cfg.task.metric
        self.higher_is_better = self.metric != "loss"
        self.splits: dict[str, list[ParallelPair]] = {}
        self._train: list[tuple[list[int], list[int]]] = []  # encoded training pairs within data.max_length

    # ----- construction -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: DictConfig) -> TranslationTask:
        data = cfg.data
        if cfg.trainer.get("batch_tokens"):
            raise ConfigError("trainer.batch_tokens is not supported by task=translation: use trainer.batch_size")
        splits = read_corpus(data)
        task = cls(cfg, *train_codecs(data, [p.source for p in splits["train"]], [p.target for p in splits["train"]]))
        task.splits = splits
        pairs = [(task.source.encode(p.source), task.target.encode(p.target)) for p in splits["train"]]
        limit = int(data.max_length) if data.max_length else math.inf
        task._train = [(s + [task.source.eos_id], t) for s, t in pairs if len(s) <= limit and len(t) <= limit]
        log.info("subwords: %s, %d source / %d target ids; %d/%d/%d pairs; %d training pairs over data.max_length=%s "
                 "dropped; training subwords per sentence: source %.1f, target %.1f",
                 "joint" if data.spm_joint else "per language", len(task.source), len(task.target),
                 *(len(splits[s]) for s in ("train", "dev", "test")), len(pairs) - len(task._train), data.max_length,
                 *(sum(len(p[i]) for p in pairs) / len(pairs) for i in (0, 1)))
        return task

    @classmethod
    def from_state(cls, cfg: DictConfig, state: dict) -> TranslationTask:
        return cls(cfg, *codecs_from_state(state))

    def state(self) -> dict:
        return codecs_state(self.source, self.target)

    def build_model(self) -> Seq2Seq:
        return build_seq2seq(self.cfg.model, len(self.source), len(self.target), self.target.pad_id)

    def predictor(self, model: Seq2Seq) -> Translator:
        return Translator(self, model)

    # ----- batches ------------------------------------------------------------------------------
    def _batch(self, sources: list[list[int]], targets: list[list[int]] | None = None,
               teacher_forcing: float = 1.0) -> TranslationBatch:
        pad, bos, eos = self.target.pad_id, self.target.bos_id, self.target.eos_id
        lengths = torch.tensor([len(s) for s in sources], dtype=torch.long)
        if targets is None:
            return TranslationBatch(pad_sequences(sources, pad), lengths, None, None)
        return TranslationBatch(pad_sequences(sources, pad), lengths, pad_sequences([[bos] + t for t in targets], pad),
                                pad_sequences([t + [eos] for t in targets], pad), sum(len(t) + 1 for t in targets),
                                teacher_forcing)

    def train_lengths(self) -> list[int]:
        """Pairs are bucketed by target length, then source length (the decoder loop is the cost)."""
        return [len(t) * 4096 + len(s) for s, t in self._train]

    def collate(self, indices: list[int], epoch: int) -> TranslationBatch:
        batch = self._batch(*zip(*(self._train[i] for i in indices)),
                            teacher_forcing=teacher_forcing_ratio(self.cfg.task.teacher_forcing, epoch))
        batch.label_smoothing = float(self.cfg.model.label_smoothing)
        return batch

    def objective(self, model: Seq2Seq) -> Objective:
        return Objective(model, translation_loss)

    # ----- decoding, evaluation -----------------------------------------------------------------

    def encode_sources(self, texts: list[str]) -> list[list[int]]:
        """Source ids (+ eos) of each text, cut to ``data.max_source_length`` subwords with a warning."""
        return self.source.encode_sources(texts, self.cfg.data.get("max_source_length"))

    def decode(self, model: Seq2Seq, sources: list[list[int]], beam: int = 1, length_penalty: float = 0.0
               ) -> tuple[list[list[int]], list[torch.Tensor | None]]:
        """Output ids (no bos / eos) and attention ``(output, source)`` of each source, in the input order:
        greedy search for ``beam <= 1``, else beam search with GNMT length penalty ``length_penalty``."""
        with evaluating(model) as device:
            return self._decode(model, sources, device, beam, length_penalty)

    def _decode(self, model: Seq2Seq, sources: list[list[int]], device: torch.device, beam: int,
                length_penalty: float) -> tuple[list[list[int]], list[torch.Tensor | None]]:
        task = self.cfg.task
        tokens: list = [None] * len(sources)
        attention: list = [None] * len(sources)
        for group in bucket_batches([len(s) for s in sources], int(self.cfg.trainer.eval_batch_size), False):
            batch = move_batch(self._batch([sources[i] for i in group]), device)
            limits = torch.tensor([int(task.max_length_ratio * (len(sources[i]) - 1) + task.max_length_offset)
                                   for i in group])
            memory = model.encode(batch.src, batch.src_lengths)
            state = model.init_state(memory)
            eos, bos = self.target.eos_id, self.target.bos_id
            if beam <= 1:
                out, weights = greedy_search(model, memory, state, bos, eos, limits)
            else:
                out, weights = beam_search(model, memory, state, bos, eos, int(beam), limits, float(length_penalty))
            for i, ids, w in zip(group, out, weights):
                tokens[i], attention[i] = ids, None if w is None else w.float().cpu()
        return tokens, attention

    def translate(self, model: Seq2Seq, texts: list[str], beam: int | None = None,
                  length_penalty: float | None = None) -> tuple[list[str], list[list[int]], list]:
        """Detokenized translations, output ids and attention; ``beam`` / ``length_penalty`` default to the task's."""
        beam = int(self.cfg.task.beam if beam is None else beam)
        alpha = float(self.cfg.task.length_penalty if length_penalty is None else length_penalty)
        ids, attention = self.decode(model, self.encode_sources(texts), beam, alpha)
        return [self.target.decode(t) for t in ids], ids, attention

    def loss_sums(self, model: Seq2Seq, pairs: list[ParallelPair]) -> dict[str, float]:
        """Summed target-token cross-entropy (no label smoothing, teacher forcing) and the token count."""
        sources = self.encode_sources([p.source for p in pairs])
        targets = [self.target.encode(p.target) for p in pairs]
        total, count = 0.0, 0
        with evaluating(model) as device:
            for group in bucket_batches([len(t) for t in targets], int(self.cfg.trainer.eval_batch_size), False):
                batch = move_batch(self._batch([sources[i] for i in group], [targets[i] for i in group]), device)
                loss = model.loss(batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out)
                total += float(loss) * batch.num_tokens
                count += batch.num_tokens
        return {"loss_sum": total, "loss_tokens": float(count)}

    def validation_stats(self, model: Seq2Seq, rank: int = 0, world_size: int = 1) -> dict[str, float]:
        """Greedy translations' BLEU / chrF statistics and the dev loss sums of the dev pairs ``rank::world_size``."""
        dev = self.splits["dev"][rank::world_size]
        hypotheses, _, _ = self.translate(model, [p.source for p in dev], beam=1)
        return {**translation_stats(hypotheses, [p.target for p in dev]), **self.loss_sums(model, dev)}

    def scores(self, stats: dict[str, float]) -> dict[str, float]:
        return {**translation_scores_from_stats(stats), "loss": stats["loss_sum"] / max(stats["loss_tokens"], 1)}

    def report(self, model: Seq2Seq, examples: list[ParallelPair], output: str | None = None, beam: int | None = None,
               length_penalty: float | None = None, attention_plot: int | None = None) -> tuple[dict, str]:
        """BLEU and chrF: the scores, and the report with sacrebleu's signatures; with ``output``, one detokenized
        translation per line (per source line, when ``examples`` came from files: an empty line for each pair
        skipped);
        with ``attention_plot=N``, the attention of sentence N (0-based) as ``OUTPUT.attentionN.png`` (or
        ``attentionN.png`` without ``output``)."""
        if attention_plot is not None and not 0 <= int(attention_plot) < len(examples):
            raise NlpseqError(f"attention_plot={attention_plot}: there are {len(examples)} sentences (0-based index)")
        hypotheses, ids, attention = self.translate(model, [e.source for e in examples], beam, length_penalty)
        scores = translation_scores(hypotheses, [e.target for e in examples])
        text = translation_report(scores)
        if output:
            write_by_line(output, examples, hypotheses)
        if attention_plot is not None:
            n = int(attention_plot)
            if attention[n] is None:
                raise NlpseqError("this model has no attention to plot (model.attention=none)")
            from nlpseq.plots import plot_attention

            source = self.source.pieces(examples[n].source)[:attention[n].size(1) - 1] + ["</s>"]
            path = f"{output}.attention{n}.png" if output else f"attention{n}.png"
            plot_attention(attention[n].numpy(), source, self.target.to_pieces(ids[n]), path, hypotheses[n][:80])
            text += f"\nattention of sentence {n} drawn in {path}"
        return scores, text

    def read_split(self, split: str | None = None, file: str | None = None, data_root: str | None = None,
                   src: str | None = None, ref: str | None = None) -> list[ParallelPair]:
        """A named split of the configured corpus (under ``data_root`` when given), or ``src`` / ``ref`` files
        (line-aligned, plain or .gz)."""
        if file:
            raise NlpseqError("a translation test set is two files: give src=FILE ref=FILE instead of file=")
        if src or ref:
            if not (src and ref):
                raise NlpseqError("src= and ref= go together (predict.py translates without references)")
            pairs, skipped = read_parallel(src, ref)
            if skipped:
                log.warning("%d line pairs with an empty side skipped in %s / %s", skipped, src, ref)
            return pairs
        check_choice("split", split, SPLITS)
        return read_corpus(self.cfg.data, (split,), data_root)[split]


def write_by_line(output: str, examples: list[ParallelPair], hypotheses: list[str]) -> None:
    """``hypotheses`` (of ``examples``) to ``output``, one line per source line: empty for each pair skipped."""
    lines = by_line(examples, hypotheses)
    Path(output).write_text("".join(h + "\n" for h in lines), encoding="utf-8")
    if len(lines) > len(hypotheses):
        log.warning("%s: an empty line for each of the %d line pairs skipped (an empty side), so that line N "
                    "translates source line N", output, len(lines) - len(hypotheses))


def read_corpus(data: DictConfig, splits=SPLITS, root: str | None = None) -> dict[str, list[ParallelPair]]:
    """``<root>/<folder>/<prefix>.<src_lang>`` / ``.<tgt_lang>`` pairs of each split (``root`` defaults to
    ``data.root``), reading only those splits' files; empty lines skipped, counted."""
    files = [f"{data[split]}.{lang}" for split in splits for lang in (data.src_lang, data.tgt_lang)]
    folder = corpus_dir(data.name, root or data.root, data.download, files)
    out = {}
    for split in splits:
        prefix = folder / str(data[split])
        out[split], skipped = read_parallel(f"{prefix}.{data.src_lang}", f"{prefix}.{data.tgt_lang}")
        if skipped:
            log.warning("%s: %d line pairs with an empty side skipped", prefix, skipped)
    return out


class Translator(PredictorBase):
    """Inference from a checkpoint: ``nlpseq.load(path).translate(["Ein Mann fährt Fahrrad ."], beam=5)``."""

    offers = ("translate(texts, beam=, length_penalty=)", "predict(texts, beam=)")
    prediction_options = ("beam",)
    evaluation_options = ("beam", "length_penalty", "attention_plot", "src", "ref")

    def __init__(self, task: TranslationTask, model: Seq2Seq):
        self.task, self.model = task, model.eval()

    def read_examples(self, split: str | None, file: str | None, data_root: str | None, src: str | None = None,
                      ref: str | None = None, **decoding) -> list[ParallelPair]:
        return self.task.read_split(split, file, data_root, src, ref)

    def score(self, examples: list[ParallelPair], output: str | None, src: str | None = None, ref: str | None = None,
              **decoding) -> tuple[dict, str]:
        return self.task.report(self.model, examples, output, **decoding)

    def translate(self, texts: list[str], beam: int | None = None, length_penalty: float | None = None) -> list[str]:
        """One detokenized translation per text. ``beam`` (1: greedy) and ``length_penalty`` (GNMT alpha)
        default to the checkpoint's ``task.beam`` / ``task.length_penalty``. Inputs longer than
        ``data.max_source_length`` subwords are cut there (a warning is logged); an empty text is an error."""
        if isinstance(texts, str):
            texts = [texts]
        for i, text in enumerate(texts):
            if not text.strip():
                raise NlpseqError(f"input {i + 1} is empty: nothing to translate")
        return self.task.translate(self.model, [t.strip() for t in texts], beam, length_penalty)[0]

    def predict(self, texts: list[str], beam: int | None = None, **options) -> list[dict]:
        """Each text -> ``{"text", "translation"}`` (the uniform predictor call of ``predict.py``); an option
        other than ``beam`` is an error."""
        self.check_options(options, self.prediction_options)
        if isinstance(texts, str):
            texts = [texts]
        return [{"text": t, "translation": h} for t, h in zip(texts, self.translate(texts, beam))]

    @staticmethod
    def format_text(result: dict) -> str:
        return result["translation"] + "\n"
