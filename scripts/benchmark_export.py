"""Parity and speed of an ONNX bundle against eager PyTorch: ``python scripts/benchmark_export.py CHECKPOINT``.

Exports CHECKPOINT to a temporary bundle (``--bundle DIR`` uses an existing one), reads the texts of the split
``--split`` of its corpus (under ``--data-root``, else ``NLPSEQ_DATA``, else the training root) or one text per
line of ``--input FILE``, and prints one JSON line per measurement, as ``scripts/benchmark.py`` does:

* ``parity``: texts whose prediction differs (NER: the tag sequence; sentiment: the label, plus the largest
  probability difference; translation: the string with the checkpoint's default decoding and greedy);
* ``latency_p50`` / ``latency_p95``: one text per call (ms), the two sides interleaved text by text;
* ``throughput``: every text in one ``predict`` call (texts/s), each side batching by ``trainer.eval_batch_size``.

``pytorch`` and ``onnxruntime`` are the two sides, ``ratio = onnxruntime / pytorch``; both run on ``--threads``
threads (``torch.set_num_threads``; onnxruntime ``intra_op_num_threads``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ sits beside nlpseq/

import nlpseq  # noqa: E402
import nlpseq.onnx_runtime as onnx_runtime  # noqa: E402
from benchmarks.timing import latencies, percentile  # noqa: E402
from nlpseq.export import export_bundle  # noqa: E402


def read_texts(predictor, args) -> list[str]:
    """The texts to predict: ``--input`` lines, else the split's examples as raw text."""
    if args.input:
        return [line.rstrip("\n") for line in open(args.input, encoding="utf-8") if line.strip()][:args.limit]
    examples = predictor.read_examples(args.split, None, args.data_root or os.environ.get("NLPSEQ_DATA"))
    texts = [" ".join(e.tokens) if hasattr(e, "tokens") else getattr(e, "text", getattr(e, "source", None))
             for e in examples]
    return texts[:args.limit]


def parity(task: str, expected: list[dict], got: list[dict]) -> dict:
    """How many of the texts' predictions differ, by the task's measure."""
    if task == "ner":
        return {"differ": sum(e["tags"] != g["tags"] for e, g in zip(expected, got)),
                "tokens_differ": sum(a != b for e, g in zip(expected, got) for a, b in zip(e["tags"], g["tags"]))}
    if task == "sentiment":
        worst = max(abs(e["probabilities"][k] - g["probabilities"][k]) for e, g in zip(expected, got)
                    for k in e["probabilities"])
        return {"differ": sum(e["label"] != g["label"] for e, g in zip(expected, got)), "max_prob_diff": worst}
    return {"differ": sum(e["translation"] != g["translation"] for e, g in zip(expected, got))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--bundle", help="an exported bundle of CHECKPOINT (default: export to a temporary folder)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--input", help="one text per line, instead of the split")
    parser.add_argument("--data-root")
    parser.add_argument("--limit", type=int, default=None, help="the first N texts only")
    parser.add_argument("--latency-texts", type=int, default=300, help="texts timed one per call")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quantize", action="store_true", help="export with int8 weights (parity then approximate)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(args.bundle or Path(tmp) / "bundle")
        if not args.bundle:
            export_bundle(args.checkpoint, bundle, quantize=args.quantize)
        ours, theirs = nlpseq.load(args.checkpoint), onnx_runtime.load(bundle, threads=args.threads)
        task, texts = ours.task.name, read_texts(ours, args)
        common = {"task": task, "threads": args.threads, "texts": len(texts),
                  "cpu": platform.processor() or platform.machine(), "torch": torch.__version__}

        def report(phase: str, a: float | None, b: float | None, unit: str, higher_is_better: bool, **extra):
            print(json.dumps({**common, "phase": phase, "pytorch": _round(a), "onnxruntime": _round(b), "unit": unit,
                              "ratio": round(b / a, 3) if a and b else None, "higher_is_better": higher_is_better,
                              **extra}), flush=True)

        for text in texts[:10]:  # warm-up: first calls allocate
            ours.predict([text]), theirs.predict([text])
        start = time.perf_counter()
        expected = ours.predict(texts)
        torch_s = time.perf_counter() - start
        start = time.perf_counter()
        got = theirs.predict(texts)
        onnx_s = time.perf_counter() - start
        report("parity", None, None, "texts", False, **parity(task, expected, got))
        if task == "translation":
            greedy = [{"translation": t} for t in ours.translate(texts, beam=1)]
            report("parity_greedy", None, None, "texts", False,
                   **parity(task, greedy, [{"translation": t} for t in theirs.translate(texts, beam=1)]))
        report("throughput", len(texts) / torch_s, len(texts) / onnx_s, "texts/s", True)
        if args.latency_texts > 0:
            a, b = latencies(lambda t: ours.predict([t]), lambda t: theirs.predict([t]), texts[:args.latency_texts])
            report("latency_p50", percentile(a, 50), percentile(b, 50), "ms", False)
            report("latency_p95", percentile(a, 95), percentile(b, 95), "ms", False)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3 if abs(x) < 100 else 1)


if __name__ == "__main__":
    main()
