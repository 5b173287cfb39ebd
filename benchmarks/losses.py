"""Fingerprint training for refactors: the first N training losses and the dev scores after one epoch.

    NLPSEQ_DATA=../shared/data python benchmarks/losses.py OUT.json task=ner [task=sentiment task=translation]

Trains each task for one epoch in this process (1 thread, the committed config, seed 42) and writes
``{task: {"losses": [...first 200...], "steps": N, "dev": {first metrics.jsonl line}}}``. Run it before and
after a change and compare the files: a refactor that changes no number leaves them identical.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir

import nlpseq.trainer as trainer
from nlpseq.tasks import TASKS

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def fingerprint(overrides: list[str], keep: int = 200) -> dict:
    losses: list[float] = []
    step = trainer.train_step

    def recording(*args, **kwargs):
        result = step(*args, **kwargs)
        losses.append(result[0])
        return result

    trainer.train_step = recording
    try:
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            cfg = compose("train", [*overrides, "trainer.max_epochs=1", "trainer.num_threads=1",
                                    "trainer.progress_bar=false"])
        with tempfile.TemporaryDirectory() as run:
            trainer.train(TASKS[cfg.task.name].from_config(cfg), cfg, run)
            dev = json.loads((Path(run) / "metrics.jsonl").read_text().splitlines()[0])
    finally:
        trainer.train_step = step
    dev.pop("elapsed_s", None)
    return {"losses": losses[:keep], "steps": len(losses), "dev": dev}


if __name__ == "__main__":
    out, specs = sys.argv[1], sys.argv[2:] or ["task=ner"]
    Path(out).write_text(json.dumps({spec: fingerprint(spec.split()) for spec in specs}, indent=1) + "\n")
