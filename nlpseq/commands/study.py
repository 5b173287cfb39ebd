"""The memory study: ``python scripts/study.py`` (``study=quick`` for a 5-minute look).

Trains every cell of ``study.cells`` on every problem of ``study.tasks`` (adding, copy, order) and length of
``study.lengths``, once per seed of ``study.seeds``, as ordinary ``task=memory`` runs (``study.jobs`` of them side
by side, one thread each); measures ‖∂L/∂h_t‖ for
every time step at initialisation and after training; shows a plain RNN's exploding gradients with and without
clipping; writes ``report.md``, ``results.json`` and PNG plots to its run directory (``studies/<date>_<time>``,
or ``hydra.run.dir=DIR``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from nlpseq.cli import exits_cleanly
from nlpseq.data.memory import check_problem
from nlpseq.runtime import flush_denormals, start, stop
from nlpseq.schema import validate
from nlpseq.study import clipping_demo, result_rows, run_one, train_in_parallel
from nlpseq.study_report import write_report

log = logging.getLogger("nlpseq.study")


@hydra.main(config_path="../conf", config_name="study", version_base="1.3")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    study, root = cfg.study, Path(HydraConfig.get().runtime.output_dir)

    def compose_training(overrides: list[str]) -> DictConfig:
        config = compose(config_name="train", overrides=[*overrides, f"device={cfg.device}"])
        validate(config, {})
        return config

    for problem in study.tasks:  # every setting refused now, not after the trainings before it
        for length in study.lengths:
            check_problem(str(problem), int(length))
    settings = [(str(problem), int(length), str(cell), int(seed)) for problem in study.tasks
                for length in study.lengths for cell in study.cells for seed in study.seeds]
    if int(study.jobs) > 1:  # train side by side first; run_one below then finds the runs finished
        train_in_parallel(study, settings, root, int(study.jobs), str(cfg.device))
    flush_denormals()
    runtime = start(str(cfg.device), cfg.num_threads)
    try:
        results = [run_one(study, compose_training, *setting, root, runtime) for setting in settings]
        curves = clipping_demo(study, compose_training, runtime)
    finally:
        stop(runtime)
    (root / "results.json").write_text(json.dumps({"results": result_rows(results), "clipping": curves}),
                                       encoding="utf-8")
    title = (f"plain RNN, adding T={study.explode_length}, recurrent weights x{study.explode_scale}, "
             f"{study.explode_optimizer} lr {study.explode_lr}: {study.explode_steps} steps without clipping and with "
             f"clipping at {study.clip}")
    command = "python scripts/study.py " + " ".join(HydraConfig.get().overrides.task)
    report = write_report(root, results, list(study.cells), curves, command.strip(), title)
    print(f"report: {report}")


if __name__ == "__main__":
    main()
