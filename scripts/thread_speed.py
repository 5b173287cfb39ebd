"""Training speed when the machine is shared: ``python scripts/thread_speed.py task=ner model=tagger_glove``.

For each ``speed.settings`` entry (a thread count, ``auto``: decided at start-up and re-decided during training
by :class:`nlpseq.threads.ThreadGovernor`, ``auto-startup``: decided at start-up only, as before the governor)
and each ``speed.shared`` condition, a fresh trainer of the configured task trains on its real batches for
``speed.warmup_seconds`` on the idle machine, then for ``speed.seconds`` more, timed; with ``shared``, a busy
loop (``python -c "while True: pass"``) holds a core for the timed window. Prints one JSON line per measurement:
training tokens/s (target tokens for translation) and the thread count in use at the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's nlpseq, installed or not

from nlpseq.cli import exits_cleanly  # noqa: E402
from nlpseq.provenance import cpu_model, git_commit  # noqa: E402
from nlpseq.runtime import Runtime, flush_denormals  # noqa: E402
from nlpseq.tasks import TASKS  # noqa: E402
from nlpseq.threads import set_threads, thread_governor  # noqa: E402
from nlpseq.trainer import Trainer  # noqa: E402

BUSY_LOOP = [sys.executable, "-c", "while True: pass"]


def train_for(trainer: Trainer, seconds: float, steps: list, position: int) -> tuple[float, float, int]:
    """Train ``seconds`` of steps (cycling through ``steps`` from ``position``); returns ``(tokens, seconds,
    next position)``."""
    bar = tqdm(disable=True)
    tokens, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        tokens += trainer.step(steps[position % len(steps)], bar, start, tokens)
        position += 1
    return tokens, time.perf_counter() - start, position


def measure(task, cfg: DictConfig, setting: str, shared: bool) -> dict:
    """One setting under one condition, with a fresh trainer (the same seed, model and batches each time)."""
    sc = cfg.speed
    threads = set_threads("auto" if setting.startswith("auto") else int(setting))
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(task, cfg, run_dir, Runtime())
        # a fixed count, or auto decided once (auto-startup): no re-deciding during training
        trainer.governor = thread_governor("auto", torch.device("cpu")) if setting == "auto" else None
        steps = trainer.plan(0)
        _, _, position = train_for(trainer, float(sc.warmup_seconds), steps, 0)
        hog = subprocess.Popen(BUSY_LOOP) if shared else None
        try:
            tokens, seconds, _ = train_for(trainer, float(sc.seconds), steps, position)
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
    return {"task": cfg.task.name, "setting": setting, "shared": shared, "tokens_per_s": round(tokens / seconds, 1),
            "start_threads": threads, "end_threads": torch.get_num_threads(),
            "switches": trainer.governor.switches if trainer.governor else 0, "seconds": round(seconds, 1)}


@hydra.main(config_path="../nlpseq/conf", config_name="thread_speed", version_base="1.3")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    flush_denormals()
    cfg.trainer.progress_bar = False
    task = TASKS[cfg.task.name].from_config(cfg)
    about = {"cpu": cpu_model(), "commit": git_commit(), "torch": torch.__version__}
    for shared in cfg.speed.shared:
        for setting in cfg.speed.settings:
            line = json.dumps({**measure(task, cfg, str(setting), bool(shared)), **about})
            print(line, flush=True)
            if cfg.speed.output:
                with open(cfg.speed.output, "a", encoding="utf-8") as f:
                    f.write(line + "\n")


if __name__ == "__main__":
    main()
