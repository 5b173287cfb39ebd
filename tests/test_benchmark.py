"""scripts/benchmark.py and benchmarks/: the script's JSON lines on tiny corpora (their form only, never a speed),
and the plain-PyTorch reference models computing the same function as nlpseq's once the weights are copied."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from benchmarks import suites
from benchmarks.reference_classifier import ReferenceClassifier
from benchmarks.reference_seq2seq import ReferenceSeq2Seq
from benchmarks.reference_tagger import ReferenceTagger
from benchmarks.suites import SUITES
from nlpseq.data.batching import batch_plan
from nlpseq.decoding import greedy_search
from nlpseq.tasks import TASKS
from tests.conftest import TINY_CLASSIFIER, TINY_MODEL, compose_config
from tests.test_pipeline import run_script
from tests.test_translation import TINY_SEQ2SEQ, make_pairs, write_pairs

FIELDS = {"task", "phase", "nlpseq", "reference", "unit", "ratio", "higher_is_better", "threads"}
QUICK = ["benchmark.num_threads=1", "benchmark.warmup_steps=1", "benchmark.windows=1", "benchmark.window_seconds=0.05",
         "benchmark.inference_windows=1", "benchmark.inference_seconds=0.01", "benchmark.sentences=8",
         "benchmark.latency_sentences=3", "benchmark.memory_steps=1", "data.download=false"]
CLASSIFIER_PHASES = ["train", "train_peak_memory", "infer_batched", "infer_peak_memory", "infer_latency_p50",
                     "infer_latency_p95"]
INT8_PHASES = ["infer_batched_int8", "infer_latency_p50_int8", "infer_latency_p95_int8"]


@pytest.fixture
def tiny_parallel(tmp_path: Path, monkeypatch) -> Path:
    """A data root with multi30k/{train,val,test_2016_flickr}.{de,en} of made-up pairs (sentencepiece cache in
    tmp_path)."""
    monkeypatch.setenv("NLPSEQ_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "data" / "multi30k"
    folder.mkdir(parents=True)
    for prefix, n, seed in (("train", 120, 1), ("val", 24, 2), ("test_2016_flickr", 8, 3)):
        write_pairs(folder, prefix, make_pairs(n, seed))
    return tmp_path / "data"


# ----- the script's output ------------------------------------------------------------------------
def run_benchmark(task: str, data_root: Path, tmp_path: Path, *overrides: str) -> tuple[list[str], list[dict]]:
    """Run scripts/benchmark.py (hydra's log file in tmp_path, not the repository); its stdout lines, parsed."""
    done = run_script("benchmark.py", f"task={task}", *QUICK, *overrides, f"hydra.run.dir={tmp_path / 'run'}",
                      env_root=data_root, extra_env={"OMP_NUM_THREADS": "1", "NLPSEQ_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stdout.splitlines()
    records, not_json = [], []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            not_json.append(line)
    assert not not_json, f"standard output must be JSON lines only; these are not: {not_json}"
    return lines, records


def _rounding(x: float) -> float:
    """The largest error of the script's rounding of a reported value (3 decimals below 100, else 1)."""
    return 0.05 if abs(x) >= 100 else 0.0005


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def check_records(records: list[dict], task: str, phases: list[str], train_unit: str) -> None:
    for r in records:
        assert isinstance(r, dict) and set(r) == FIELDS, r
    assert sorted(r["phase"] for r in records) == sorted(phases)  # each phase once, nothing else
    for r in records:
        where, phase = f"{r['phase']}: {r}", r["phase"]
        assert r["task"] == task and r["threads"] == 1, where
        assert isinstance(r["unit"], str) and r["unit"], where
        if phase == "train":
            unit = train_unit
        elif "memory" in phase:
            unit = "MiB"
        elif phase.startswith("infer_batched"):
            unit = "sentences/s"
        else:
            unit = "ms"
        assert r["unit"] == unit, where
        assert r["higher_is_better"] is unit.endswith("/s"), where
        values = r["nlpseq"], r["reference"]
        for v in values:
            if unit == "MiB":  # None where the kernel's high-water mark cannot be read (off Linux)
                assert v is None or _is_number(v) and v >= 0, where  # a phase may add no resident memory
            else:
                assert _is_number(v) and v > 0, where
        if all(_is_number(v) and v > 0 for v in values):
            # ratio = round(nlpseq / reference, 3) of the unrounded values, so equal to the quotient of the
            # reported (rounded) values up to their rounding
            (a, b), (ea, eb) = values, map(_rounding, values)
            assert _is_number(r["ratio"]), where
            assert (a - ea) / (b + eb) - 0.0005 - 1e-9 <= r["ratio"] <= (a + ea) / (b - eb) + 0.0005 + 1e-9, where
        else:
            assert r["ratio"] is None, where


def test_ner_benchmark_prints_json_lines_and_writes_them_to_the_output_file(tiny_conll, tmp_path):
    output = tmp_path / "bench.jsonl"
    lines, records = run_benchmark("ner", tiny_conll, tmp_path, *TINY_MODEL, "benchmark.quantize=true",
                                   f"benchmark.output={output}")
    check_records(records, "ner", CLASSIFIER_PHASES + INT8_PHASES, "tokens/s")
    assert output.read_text(encoding="utf-8").splitlines() == lines


def test_sentiment_benchmark_prints_json_lines(tiny_sst, tmp_path):
    _, records = run_benchmark("sentiment", tiny_sst, tmp_path, *TINY_CLASSIFIER, "benchmark.quantize=false")
    check_records(records, "sentiment", CLASSIFIER_PHASES, "tokens/s")


def test_translation_benchmark_prints_json_lines(tiny_parallel, tmp_path):
    _, records = run_benchmark("translation", tiny_parallel, tmp_path, *TINY_SEQ2SEQ, "benchmark.beam=2",
                               "benchmark.quantize=true")
    float_phases = ["train", "train_peak_memory"]
    for kind in ("greedy", "beam2"):
        float_phases += [f"infer_batched_{kind}", f"infer_peak_memory_{kind}", f"infer_latency_{kind}_p50",
                         f"infer_latency_{kind}_p95"]
    int8 = [p + "_int8" for p in float_phases if p.startswith(("infer_batched", "infer_latency"))]
    check_records(records, "translation", float_phases + int8, "target tokens/s")


# ----- the references compute nlpseq's function ---------------------------------------------------
def scrambled(model: torch.nn.Module, scale: float = 3.0) -> torch.nn.Module:
    """``model`` with its initial weights scaled, in eval mode: a tiny untrained model is near-uniform and gives
    every input the same output, so equal outputs would prove little; scaled weights make them depend on the
    input."""
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model.eval()


@pytest.mark.parametrize("overrides", [(), ("model.char_encoder=none", "model.cell=gru", "model.layers=1"),
                                       ("model.static_channel=true",)])
def test_reference_tagger_computes_the_same_function(ner_config, overrides):
    cfg = ner_config(*overrides)
    task = TASKS["ner"].from_config(cfg)
    torch.manual_seed(0)
    model = scrambled(task.build_model())
    if model.embedder.static is not None:  # all zeros without vectors: give the frozen copy values of its own
        torch.nn.init.normal_(model.embedder.static.weight[1:])
    reference = ReferenceTagger(len(task.words), len(task.chars), len(task.labels), cfg.model).eval()
    suites.copy_tagger(model, reference)

    sentences = [s.tokens for s in task.splits["dev"]] + [["Unseen", "Zyx", "words", "."], ["a"]]
    ours = task.predict_tags(model, sentences)
    batch = suites._padded_chars(task, sentences)  # one padded batch, as the reference reads it
    theirs = [task.labels.decode(ids) for ids in reference.decode(batch.words, batch.chars, batch.lengths)]
    assert theirs == ours and len({tuple(t) for t in ours}) > 3

    dev = task.splits["dev"]
    with torch.no_grad():
        gold = task.make_batch([s.tokens for s in dev], [s.tags for s in dev])
        ref_gold = suites._padded_chars(task, [s.tokens for s in dev], [s.tags for s in dev])
        torch.testing.assert_close(reference.loss(ref_gold.words, ref_gold.chars, ref_gold.lengths, ref_gold.tags),
                                   task.objective(model)(gold))


@pytest.mark.parametrize("overrides", [("model.pooling=max",), ("model.pooling=mean", "model.cell=gru"),
                                       ("model.pooling=last", "model.layers=2")])
def test_reference_classifier_computes_the_same_function(sentiment_config, overrides):
    cfg = sentiment_config(*overrides)
    task = TASKS["sentiment"].from_config(cfg)
    torch.manual_seed(0)
    model = scrambled(task.build_model())
    reference = ReferenceClassifier(len(task.words), len(task.labels), cfg.model).eval()
    suites.copy_classifier(model, reference)

    texts = [e.text for e in task.splits["dev"]] + ["unseen words only", "great"]
    ours = task.probabilities(model, texts)
    ids = [task.words.encode(task.tokens(t)) for t in texts]
    words = torch.nn.utils.rnn.pad_sequence([torch.tensor(i) for i in ids], batch_first=True)
    with torch.no_grad():
        theirs = reference(words, torch.tensor([len(i) for i in ids])).softmax(-1)
        torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)
        assert ours[:, 0].max() - ours[:, 0].min() > 0.05  # the scores depend on the text
        batch = task.collate(batch_plan(task.train_lengths(), int(cfg.trainer.batch_size), int(cfg.seed), 0)[0], 0)
        torch.testing.assert_close(reference.loss(batch.words, batch.lengths, batch.labels),
                                   task.objective(model)(batch))


def translation_task(root: Path, *overrides: str):
    cfg = compose_config(["task=translation", f"data.root={root}", "data.download=false", *TINY_SEQ2SEQ, *overrides])
    return cfg, TASKS["translation"].from_config(cfg)


def scrambled_seq2seq(model, eos_id: int):
    """Scaled untrained weights, eos a little more likely: outputs range from empty to the length limit."""
    scrambled(model)
    with torch.no_grad():
        model.output.bias[eos_id] += 1.0
    return model


@pytest.mark.parametrize("overrides", [(), ("model.tie_embeddings=false",)])
def test_reference_seq2seq_computes_the_same_function(tiny_parallel, overrides):
    cfg, task = translation_task(tiny_parallel, *overrides)
    torch.manual_seed(0)
    model = scrambled_seq2seq(task.build_model(), task.target.eos_id)
    reference = ReferenceSeq2Seq(len(task.source), len(task.target), cfg.model).eval()
    suites.copy_seq2seq(model, reference)
    bos, eos = task.target.bos_id, task.target.eos_id

    sources = task.encode_sources([p.source for p in task.splits["dev"]])
    batch = task._batch(sources)  # one padded batch, one length limit
    with torch.no_grad():
        memory = model.encode(batch.src, batch.src_lengths)
        ours, _ = greedy_search(model, memory, model.init_state(memory), bos, eos, torch.full((len(sources),), 30))
        assert reference.greedy(batch.src, batch.src_lengths, bos, eos, torch.full((len(sources),), 30)) == ours
        lengths = {len(t) for t in ours}
        # some end early, some hit the limit (which lengths depends on sentencepiece's version: not pinned)
        assert 30 in lengths and min(lengths) < 30

        def limit(source: list[int]) -> int:
            return int(cfg.task.max_length_ratio * (len(source) - 1) + cfg.task.max_length_offset)

        for beam, alpha in ((1, 0.0), (2, 0.6), (3, 1.0)):  # one sentence at a time with its own length limit
            theirs = []
            for source in sources:
                one = task._batch([source])
                if beam == 1:
                    theirs += reference.greedy(one.src, one.src_lengths, bos, eos, torch.tensor([limit(source)]))
                else:
                    theirs += reference.beam(one.src, one.src_lengths, bos, eos, limit(source), beam, alpha)
            assert theirs == task.decode(model, sources, beam, alpha)[0], f"beam {beam}"

        gold = task.collate(list(range(16)), 0)  # label smoothing and teacher forcing as in training
        torch.testing.assert_close(reference.loss(gold.src, gold.src_lengths, gold.tgt_in, gold.tgt_out),
                                   task.objective(model)(gold))


@pytest.mark.parametrize("name", ["ner", "sentiment"])
def test_suite_sides_predict_the_same_after_sync_weights(name, ner_config, sentiment_config):
    cfg = (ner_config if name == "ner" else sentiment_config)()
    task = TASKS[name].from_config(cfg)
    torch.manual_seed(0)
    suite = SUITES[name](task, cfg, 12, 6)
    scrambled(suite.nlpseq_model)
    suite.sync_weights()
    ours, theirs = suite.nlpseq.single["infer_latency"], suite.reference.single["infer_latency"]
    assert len(suite.items) == 6
    for item in suite.items:
        if name == "ner":
            assert theirs(item) == ours(item)
        else:
            torch.testing.assert_close(theirs(item), ours(item), rtol=0, atol=1e-5)
    assert suite.nlpseq.batched["infer_batched"]() == suite.reference.batched["infer_batched"]() == 12


def test_translation_suite_sides_decode_the_same_outputs(tiny_parallel, monkeypatch):
    """The suite copies nlpseq's weights into the reference so that both decode the same outputs (decoding time
    depends on them): in the batched phases too, where a batch mixes sentences of different length limits."""
    cfg, task = translation_task(tiny_parallel)
    torch.manual_seed(0)
    suite = SUITES["translation"](task, cfg, 24, 4, 2)
    scrambled_seq2seq(suite.nlpseq_model, task.target.eos_id)
    suite.sync_weights()

    for phase in ("infer_latency_greedy", "infer_latency_beam2"):
        for item in suite.items:
            assert suite.reference.single[phase](item) == suite.nlpseq.single[phase](item)[0], phase

    decoded: dict[str, dict] = {"nlpseq": {}, "reference": {}}
    decode = task.decode

    def nlpseq_decode(model, sources, *args):
        tokens, attention = decode(model, sources, *args)
        decoded["nlpseq"].update(zip(map(tuple, sources), tokens))
        return tokens, attention

    def spy(method):
        def run(self, src, lengths, *args):
            out = method(self, src, lengths, *args)
            decoded["reference"].update((tuple(s[:n].tolist()), o) for s, n, o in zip(src, lengths.tolist(), out))
            return out

        return run

    monkeypatch.setattr(task, "decode", nlpseq_decode)
    monkeypatch.setattr(ReferenceSeq2Seq, "greedy", spy(ReferenceSeq2Seq.greedy))
    monkeypatch.setattr(ReferenceSeq2Seq, "beam", spy(ReferenceSeq2Seq.beam))
    for phase in ("infer_batched_greedy", "infer_batched_beam2"):
        for side in decoded.values():
            side.clear()
        assert suite.nlpseq.batched[phase]() == suite.reference.batched[phase]() == 24
        assert len(decoded["nlpseq"]) > 10
        differ = [(int(cfg.task.max_length_ratio * (len(k) - 1) + cfg.task.max_length_offset), len(ours),
                   None if decoded["reference"].get(k) is None else len(decoded["reference"][k]))
                  for k, ours in decoded["nlpseq"].items() if decoded["reference"].get(k) != ours]
        assert not differ, (f"{phase}: {len(differ)} of {len(decoded['nlpseq'])} sources decode differently; "
                            f"(length limit, nlpseq output length, reference output length): {differ}")
