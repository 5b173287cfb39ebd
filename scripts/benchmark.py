"""Time nlpseq against a plain-PyTorch reference: ``python scripts/benchmark.py task=ner``.

In one process, on real batches of the task's corpus: training throughput (forward + backward + optimizer
step) in alternating windows A B A B after a warm-up, each window the same batches for both sides, medians
reported; batched inference (sentences/s) and
one-sentence latency (p50 / p95, ms); peak memory. The reference models live in ``benchmarks/``. Each
measurement is one JSON line with ``task, phase, nlpseq, reference, unit, ratio`` (``ratio = nlpseq /
reference``; ``higher_is_better`` says which way is good) and the thread count.
"""

from __future__ import annotations

import copy
import json
import logging
import platform
import sys
import time
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ sits beside nlpseq/

from benchmarks import memory  # noqa: E402
from benchmarks.suites import Suite, build_suite  # noqa: E402
from benchmarks.timing import alternate, alternate_steps, latencies, percentile  # noqa: E402
from nlpseq.checkpoint import load_checkpoint  # noqa: E402
from nlpseq.cli import exits_cleanly  # noqa: E402
from nlpseq.runtime import flush_denormals  # noqa: E402
from nlpseq.threads import set_threads  # noqa: E402

log = logging.getLogger("nlpseq.benchmark")


class Report:
    def __init__(self, task: str, threads: int, output: str | None):
        self.task, self.threads, self.output = task, threads, output

    def __call__(self, phase: str, ours: float | None, theirs: float | None, unit: str, higher_is_better: bool
                 ) -> None:
        ratio = None if not ours or not theirs else round(ours / theirs, 3)
        line = json.dumps({"task": self.task, "phase": phase, "nlpseq": _round(ours), "reference": _round(theirs),
                           "unit": unit, "ratio": ratio, "higher_is_better": higher_is_better,
                           "threads": self.threads})
        print(line, flush=True)
        if self.output:
            with open(self.output, "a", encoding="utf-8") as f:
                f.write(line + "\n")


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3 if abs(x) < 100 else 1)


def run(suite: Suite, cfg: DictConfig, report: Report) -> None:
    bc = cfg.benchmark
    ours, ref = suite.nlpseq, suite.reference
    start = time.perf_counter()
    for _ in range(max(1, int(bc.warmup_steps))):
        ours.train_step()
    per_step = (time.perf_counter() - start) / max(1, int(bc.warmup_steps))
    for _ in range(max(1, int(bc.warmup_steps))):
        ref.train_step()  # both sides now stand at the same batch
    if bc.profile:
        _profile(ours.train_step)
        for _ in range(20):
            ref.train_step()
    steps = max(1, round(float(bc.window_seconds) / per_step))
    a, b = alternate_steps(ours.train_step, ref.train_step, int(bc.windows), steps)
    report("train", a, b, suite.train_unit, True)
    steps = int(bc.memory_steps)
    report("train_peak_memory", *(memory.measure(cfg, side, "train", steps) for side in ("nlpseq", "reference")),
           "MiB", False)

    if bc.checkpoint:
        suite.nlpseq_model.load_state_dict(load_checkpoint(bc.checkpoint)["model"])
    suite.sync_weights()
    suite.nlpseq_model.eval()
    sides = [("", ours)]
    if bc.quantize:
        from nlpseq.quantize import quantize_dynamic

        sides.append(("_int8", suite.make_inference(quantize_dynamic(copy.deepcopy(suite.nlpseq_model)))))
    with torch.inference_mode():
        for suffix, side in sides:
            for phase, fn in side.batched.items():
                fn()
                ref.batched[phase]()  # warm-up
                a, b = alternate(fn, ref.batched[phase], int(bc.inference_windows), float(bc.inference_seconds))
                report(phase + suffix, a, b, "sentences/s", True)
                if not suffix:
                    report(phase.replace("infer_batched", "infer_peak_memory"),
                           *(memory.measure(cfg, side, phase, 0) for side in ("nlpseq", "reference")), "MiB", False)
            for phase, fn in side.single.items():
                for item in suite.items[:3]:
                    fn(item)
                    ref.single[phase](item)
                ta, tb = latencies(fn, ref.single[phase], suite.items)
                for q in (50, 95):
                    report(f"{phase}_p{q}{suffix}", percentile(ta, q), percentile(tb, q), "ms", False)


def _profile(step) -> None:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(20):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), file=sys.stderr)


@hydra.main(config_path="../nlpseq/conf", config_name="benchmark", version_base="1.3")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    bc = cfg.benchmark
    flush_denormals()  # as training does, for both sides; before the thread pool starts
    threads = set_threads(bc.num_threads)
    torch.manual_seed(int(cfg.seed))
    log.info("torch %s, %s, %d threads", torch.__version__, platform.processor() or platform.machine(), threads)
    run(build_suite(cfg), cfg, Report(cfg.task.name, threads, bc.output))


if __name__ == "__main__":
    main()
