"""Train a model: ``python scripts/train.py task=ner [key=value ...]`` (Hydra; ``-m`` for sweeps).

The run directory (``hydra.run.dir``) receives ``checkpoints/best.pt``, ``checkpoints/last.pt``,
``metrics.jsonl`` and ``train.log``. Running again with the same run directory resumes from ``last.pt``.
"""

from __future__ import annotations

import logging
import time

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from nlpseq.cli import exits_cleanly
from nlpseq.tasks import TASKS
from nlpseq.trainer import flush_denormals, train

log = logging.getLogger("nlpseq.train")


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
@exits_cleanly
def main(cfg: DictConfig) -> float:
    flush_denormals()  # before torch starts its worker threads, which inherit the setting
    start = time.perf_counter()
    run_dir = HydraConfig.get().runtime.output_dir
    task = TASKS[cfg.task.name].from_config(cfg)
    result = train(task, cfg, run_dir)
    log.info("finished in %.1f min: %d epochs, %d steps", (time.perf_counter() - start) / 60, result["epochs"],
             result["steps"])
    print(f"best checkpoint: {result['best_checkpoint']} "
          f"(dev {result['metric']} {result['best_score']:.2f} at epoch {result['best_epoch']})", flush=True)
    return result["best_score"]  # the value a Hydra sweeper optimises


if __name__ == "__main__":
    main()
