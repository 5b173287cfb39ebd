"""Train a model: ``nlpseq-train task=ner [key=value ...]`` or ``python scripts/train.py ...`` (Hydra; ``-m`` for
sweeps).

The run directory (``hydra.run.dir``) receives ``checkpoints/best.pt``, ``checkpoints/last.pt``,
``metrics.jsonl`` and ``train.log``. Running again with the same run directory resumes from ``last.pt``.

Several processes: ``torchrun --nproc_per_node=N scripts/train.py task=...`` (``--nnodes`` and ``--rdzv-*`` for
several machines). Rank 0 owns the run directory; the other ranks write nothing.
"""

from __future__ import annotations

import logging
import sys
import time

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from nlpseq.cli import exits_cleanly
from nlpseq.distributed import broadcast_object, rank_zero_first
from nlpseq.metrics import show_score
from nlpseq.provenance import record_progress, start_record
from nlpseq.rundir import lock_named_run_dir
from nlpseq.runtime import flush_denormals, hydra_overrides_for_rank, start, stop
from nlpseq.schema import validate
from nlpseq.tasks import TASKS
from nlpseq.trainer import train

log = logging.getLogger("nlpseq.train")


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
@exits_cleanly
def main(cfg: DictConfig) -> float | None:
    flush_denormals()  # before torch starts its worker threads, which inherit the setting
    start_time = time.perf_counter()
    validate(cfg)
    runtime = start(cfg.device, cfg.trainer.num_threads)
    try:
        if not runtime.is_main:
            logging.getLogger("nlpseq").setLevel(logging.WARNING)
        run_dir = broadcast_object(HydraConfig.get().runtime.output_dir, runtime)  # rank 0's, for everyone
        if runtime.is_main:
            start_record(run_dir, list(HydraConfig.get().overrides.task), cfg.trainer.num_threads,
                         runtime.device, runtime.world_size)
        with rank_zero_first(runtime):  # downloads and tokenizer training happen once, the others reuse them
            task = TASKS[cfg.task.name].from_config(cfg)
        result = train(task, cfg, run_dir, runtime)
    finally:
        stop(runtime)
    wall = time.perf_counter() - start_time
    log.info("finished in %.1f min: %d epochs, %d steps", wall / 60, result["epochs"], result["steps"])
    if runtime.is_main:
        record_progress(run_dir, finished=True)
        score = show_score(result["best_score"])
        print(f"best checkpoint: {result['best_checkpoint']} (dev {result['metric']} {score} at epoch "
              f"{result['best_epoch']})", flush=True)
    return result["best_score"]  # the value a Hydra sweeper optimises


@exits_cleanly
def claim_run_dir(argv: list[str]) -> None:
    lock_named_run_dir(argv)


def run() -> None:
    """The ``nlpseq-train`` command (and ``scripts/train.py``)."""
    claim_run_dir(sys.argv)  # before Hydra writes DIR/.hydra/: a second run on DIR is refused untouched
    sys.argv = hydra_overrides_for_rank(sys.argv)
    main()


if __name__ == "__main__":
    run()
