"""What ``scripts/benchmark.py`` times for each task: the nlpseq pipeline and its plain-PyTorch reference.

A :class:`Suite` holds, for both sides, a training step over real batches of the corpus and inference
calls on real dev sentences. After training, the reference receives a copy of nlpseq's weights so both
sides decode the same outputs (translation lengths, and so decoding time, depend on the weights).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import cycle

import torch
from omegaconf import DictConfig

from benchmarks.reference_classifier import ReferenceClassifier
from benchmarks.reference_seq2seq import ReferenceSeq2Seq
from benchmarks.reference_tagger import ReferenceTagger
from nlpseq.averaging import WeightAverage
from nlpseq.data.batching import batch_plan, bucket_batches, epoch_generator, pad_characters
from nlpseq.errors import ConfigError
from nlpseq.optim import build_optimizer
from nlpseq.trainer import train_step


@dataclass
class Side:
    train_step: Callable[[], int]  # one optimizer step; returns the tokens it trained on
    batched: dict[str, Callable[[], int]] = field(default_factory=dict)  # phase -> a pass; returns sentences
    single: dict[str, Callable[[object], object]] = field(default_factory=dict)  # phase -> predict one item


@dataclass
class Suite:
    nlpseq: Side
    reference: Side
    items: list  # inputs for the one-sentence latency
    train_unit: str = "tokens/s"
    sync_weights: Callable[[], None] = lambda: None  # copy nlpseq's weights into the reference, set it to eval
    nlpseq_model: torch.nn.Module | None = None
    make_inference: Callable[[torch.nn.Module], Side] | None = None  # nlpseq inference with another model


def _stepper(step: Callable[[object], object], batches: list, count: Callable[[object], int]) -> Callable[[], int]:
    """Cycle through ``batches``: each call trains on the next one and returns its token count."""
    it = cycle(batches)

    def run() -> int:
        batch = next(it)
        step(batch)
        return count(batch)

    return run


def _reference_step(model: torch.nn.Module, optimizer, clip: float, loss_fn: Callable[[object], torch.Tensor]):
    def step(batch) -> None:
        loss = loss_fn(batch)
        loss.item()  # the pipeline reads the loss every step too (divergence check, logging)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()

    return step


def _simple_groups(lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """Sentences of similar length, ``batch_size`` per batch: the reference's batching. With the seed the
    tasks use for epoch 0 these are exactly nlpseq's batches (unless ``trainer.batch_tokens`` is set), so
    both sides train on the same batches in the same order and a window of N steps compares like with like.
    """
    return bucket_batches(lengths, batch_size, True, epoch_generator(seed, 0))


def _nlpseq_step(task, model, cfg: DictConfig, clip: float):
    optimizer = build_optimizer(model, cfg.trainer, torch.device("cpu"), bool(cfg.model.get("pretrained_vectors")))
    average = WeightAverage(model, cfg.trainer.ema_decay) if cfg.trainer.ema_decay else None
    objective = task.objective(model)
    return lambda batch: train_step(objective, optimizer, [batch], clip, average)


def _assemble(task, cfg: DictConfig, model, nlpseq_inference: Callable[[torch.nn.Module], Side], reference,
              reference_loss: Callable[[object], torch.Tensor], reference_batches: list, reference_inference: Side,
              items: list, copy_weights: Callable[[torch.nn.Module, torch.nn.Module], None],
              train_unit: str = "tokens/s") -> Suite:
    """Both sides' training steps around their inference calls: nlpseq's ``train_step`` over the task's batches,
    the reference's plain step (fused Adam, same clipping) over ``reference_batches``."""
    clip = float(cfg.trainer.clip_norm or "inf")
    ours = nlpseq_inference(model)
    plan = batch_plan(task.train_lengths(), int(cfg.trainer.batch_size), int(cfg.seed), 0,
                      max_tokens=cfg.trainer.get("batch_tokens"))
    ours.train_step = _stepper(_nlpseq_step(task, model, cfg, clip), [task.collate(b, 0) for b in plan], _tokens)
    optimizer = torch.optim.Adam(reference.parameters(), lr=cfg.trainer.lr, fused=True)
    reference_inference.train_step = _stepper(_reference_step(reference, optimizer, clip, reference_loss),
                                              reference_batches, _tokens)

    def sync() -> None:  # after training: the same weights on both sides, the reference in eval mode once
        copy_weights(model, reference)
        reference.eval()

    return Suite(ours, reference_inference, items, train_unit, sync, model, nlpseq_inference)


def _tokens(batch) -> int:
    return batch.num_tokens


# ----- NER ----------------------------------------------------------------------------------------
def ner_suite(task, cfg: DictConfig, sentences: int, latency_items: int) -> Suite:
    m = cfg.model
    if m.char_encoder not in ("cnn", "none", None) or not m.bidirectional or not m.crf:
        raise ConfigError("the reference tagger covers char_encoder=cnn|none, bidirectional=true, crf=true")
    model = task.build_model()
    train = task.splits["train"]
    reference = ReferenceTagger(len(task.words), len(task.chars), len(task.labels), cfg.model)
    groups = _simple_groups([len(s.tokens) for s in train], int(cfg.trainer.batch_size), int(cfg.seed))
    ref_batches = [_padded_chars(task, [train[i].tokens for i in g], [train[i].tags for i in g]) for g in groups]
    dev = [s.tokens for s in task.splits["dev"]][:sentences]
    items = random.Random(0).sample(dev, min(latency_items, len(dev)))

    def nlpseq_inference(m) -> Side:
        return Side(lambda: 0, {"infer_batched": lambda: len(task.predict_tags(m, dev))},
                    {"infer_latency": lambda s: task.predict_tags(m, [s])})

    @torch.inference_mode()
    def ref_predict(sents: list[list[str]]) -> list[list[str]]:
        out: list = [None] * len(sents)
        for g in bucket_batches([len(s) for s in sents], int(cfg.trainer.eval_batch_size), False):
            b = _padded_chars(task, [sents[i] for i in g])
            for i, ids in zip(g, reference.decode(b.words, b.chars, b.lengths)):
                out[i] = task.labels.decode(ids)
        return out

    return _assemble(task, cfg, model, nlpseq_inference, reference,
                     lambda b: reference.loss(b.words, b.chars, b.lengths, b.tags), ref_batches,
                     Side(lambda: 0, {"infer_batched": lambda: len(ref_predict(dev))},
                          {"infer_latency": lambda s: ref_predict([s])}), items, copy_tagger)


def _padded_chars(task, sentences: list[list[str]], tags: list[list[str]] | None = None):
    """nlpseq's batch with the characters of every token padded to ``(batch, time, chars)``, as the reference
    reads them."""
    chars = pad_characters([[task.chars.encode(t) for t in s] for s in sentences], task.chars.pad_id)
    return dataclasses.replace(task.make_batch(sentences, tags), chars=chars)


@torch.no_grad()
def copy_tagger(model, reference: ReferenceTagger) -> None:
    emb = model.embedder
    reference.words.weight.copy_(emb.words.weight)
    if reference.static is not None:
        reference.static.weight.copy_(emb.static.weight)
    if reference.use_chars:
        cnn = emb.chars
        reference.chars.weight.copy_(cnn.embed.weight)
        filters, width = cnn.window.weight.shape
        reference.conv.weight.copy_(cnn.window.weight.view(filters, cnn.kernel_size, -1).permute(0, 2, 1))
        reference.conv.bias.copy_(cnn.window.bias)
    _copy_birnn(model.encoder, reference.rnn)
    reference.out.load_state_dict(model.projection.state_dict())
    trans, start, end = model.crf._scores()  # with the BIO constraints applied
    reference.transitions.copy_(trans)
    reference.start.copy_(start)
    reference.end.copy_(end)


def _copy_birnn(encoder, birnn) -> None:
    for ours, theirs in ((encoder.forward_rnns, birnn.fwd), (encoder.backward_rnns, birnn.bwd)):
        for a, b in zip(ours, theirs):
            b.load_state_dict(a.state_dict())


# ----- sentiment ----------------------------------------------------------------------------------
def sentiment_suite(task, cfg: DictConfig, sentences: int, latency_items: int) -> Suite:
    if task.uses_chars or cfg.model.classifier_hidden_size or cfg.model.pooling == "attention" \
            or cfg.model.get("static_channel") or not cfg.model.bidirectional:
        raise ConfigError("the reference classifier covers words -> BiRNN -> last|mean|max pooling -> linear")
    model = task.build_model()
    reference = ReferenceClassifier(len(task.words), len(task.labels), cfg.model)
    examples = task._train
    groups = _simple_groups([len(ids) for _, ids, _ in examples], int(cfg.trainer.batch_size), int(cfg.seed))
    ref_batches = [task._batch(*zip(*(examples[i] for i in g))) for g in groups]
    dev = [e.text for e in task.splits["dev"]][:sentences]
    items = random.Random(0).sample(dev, min(latency_items, len(dev)))

    def nlpseq_inference(m) -> Side:
        return Side(lambda: 0, {"infer_batched": lambda: len(task.probabilities(m, dev))},
                    {"infer_latency": lambda t: task.probabilities(m, [t])})

    @torch.inference_mode()
    def ref_predict(texts: list[str]) -> torch.Tensor:
        ids = [task.words.encode(task.tokens(t) or [task.words.unk]) for t in texts]
        out = torch.zeros(len(texts), len(task.labels))
        for g in bucket_batches([len(s) for s in ids], int(cfg.trainer.eval_batch_size), False):
            words = torch.nn.utils.rnn.pad_sequence([torch.tensor(ids[i]) for i in g], batch_first=True)
            out[g] = reference(words, torch.tensor([len(ids[i]) for i in g])).softmax(-1)
        return out

    return _assemble(task, cfg, model, nlpseq_inference, reference,
                     lambda b: reference.loss(b.words, b.lengths, b.labels), ref_batches,
                     Side(lambda: 0, {"infer_batched": lambda: len(ref_predict(dev))},
                          {"infer_latency": lambda t: ref_predict([t])}), items, copy_classifier)


@torch.no_grad()
def copy_classifier(model, reference: ReferenceClassifier) -> None:
    reference.words.weight.copy_(model.embedder.words.weight)
    _copy_birnn(model.encoder, reference.rnn)
    reference.out.load_state_dict(model.projection.state_dict())


# ----- translation --------------------------------------------------------------------------------
def translation_suite(task, cfg: DictConfig, sentences: int, latency_items: int, beam: int) -> Suite:
    m = cfg.model
    if (m.cell, m.attention, m.get("decoder_layers", 1), m.input_feeding) != ("gru", "bahdanau", 1, True):
        raise ConfigError("the reference seq2seq covers cell=gru, attention=bahdanau, one decoder layer, "
                          "input_feeding=true")
    model = task.build_model()
    reference = ReferenceSeq2Seq(len(task.source), len(task.target), m)
    pairs = task._train
    groups = _simple_groups([len(t) * 4096 + len(s) for s, t in pairs], int(cfg.trainer.batch_size), int(cfg.seed))
    ref_batches = [task._batch(*zip(*(pairs[i] for i in g))) for g in groups]
    dev = task.encode_sources([p.source for p in task.splits["dev"]])[:sentences]
    items = random.Random(0).sample(dev, min(latency_items, len(dev)))
    alpha = float(cfg.task.length_penalty)
    bos, eos = task.target.bos_id, task.target.eos_id

    def nlpseq_inference(model_) -> Side:
        return Side(lambda: 0,
                    {"infer_batched_greedy": lambda: len(task.decode(model_, dev, 1)[0]),
                     f"infer_batched_beam{beam}": lambda: len(task.decode(model_, dev, beam, alpha)[0])},
                    {"infer_latency_greedy": lambda s: task.decode(model_, [s], 1),
                     f"infer_latency_beam{beam}": lambda s: task.decode(model_, [s], beam, alpha)})

    @torch.inference_mode()
    def ref_decode(sources: list[list[int]], width: int) -> list[list[int]]:
        out: list = [None] * len(sources)
        for g in bucket_batches([len(s) for s in sources], int(cfg.trainer.eval_batch_size), False):
            b = task._batch([sources[i] for i in g])
            limits = [int(cfg.task.max_length_ratio * (len(sources[i]) - 1) + cfg.task.max_length_offset) for i in g]
            decoded = reference.greedy(b.src, b.src_lengths, bos, eos, torch.tensor(limits)) if width == 1 else [
                reference.beam(b.src[j:j + 1], b.src_lengths[j:j + 1], bos, eos, n, width, alpha)[0]
                for j, n in enumerate(limits)]
            for i, ids in zip(g, decoded):
                out[i] = ids
        return out

    return _assemble(task, cfg, model, nlpseq_inference, reference,
                     lambda b: reference.loss(b.src, b.src_lengths, b.tgt_in, b.tgt_out), ref_batches,
                     Side(lambda: 0, {"infer_batched_greedy": lambda: len(ref_decode(dev, 1)),
                                      f"infer_batched_beam{beam}": lambda: len(ref_decode(dev, beam))},
                          {"infer_latency_greedy": lambda s: ref_decode([s], 1),
                           f"infer_latency_beam{beam}": lambda s: ref_decode([s], beam)}),
                     items, copy_seq2seq, "target tokens/s")


@torch.no_grad()
def copy_seq2seq(model, reference: ReferenceSeq2Seq) -> None:
    reference.src_embed.weight.copy_(model.src_embed.weight)
    reference.tgt_embed.weight.copy_(model.tgt_embed.weight)
    _copy_birnn(model.encoder, reference.encoder)
    dec = model.decoder
    reference.bridge.load_state_dict(dec.bridge.state_dict())
    reference.cell.load_state_dict(dec.cells[0].state_dict())
    reference.query.load_state_dict(dec.attention.query_projection.state_dict())
    reference.key.load_state_dict(dec.attention.key_projection.state_dict())
    reference.energy.load_state_dict(dec.attention.score.state_dict())
    reference.combine.load_state_dict(dec.combine.state_dict())
    reference.pre_out.load_state_dict(model.pre_output.state_dict())
    reference.out.load_state_dict(model.output.state_dict())  # with tied embeddings: the shared matrix again


SUITES = {"ner": ner_suite, "sentiment": sentiment_suite, "translation": translation_suite}


def build_suite(cfg: DictConfig) -> Suite:
    """The task named by ``cfg.task.name`` on its corpus, and its suite with ``cfg.benchmark``'s sizes."""
    from nlpseq.tasks import TASKS

    bc = cfg.benchmark
    task = TASKS[cfg.task.name].from_config(cfg)
    extra = {"beam": int(bc.beam)} if cfg.task.name == "translation" else {}
    return SUITES[cfg.task.name](task, cfg, int(bc.sentences), int(bc.latency_sentences), **extra)
