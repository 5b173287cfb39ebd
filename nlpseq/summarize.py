"""README table rows from run directories: ``python scripts/summarize.py RUN_DIR... [--scores test.json ...]``.

Each run directory gives its configuration (``.hydra/``), its dev curve (``metrics.jsonl``), its test scores
(``scores/*.json``, written by ``evaluate.py``) and where it ran (``run.json``: commit, CPU, wall time). Runs that
differ only in ``seed`` form one row: mean ± standard deviation (over seeds, n - 1 in the denominator) of the dev
score at the selected checkpoint and of each test score, the epochs (best) and wall time of every run, the sweep
command and the commit. A sweep directory (``multirun/...``) stands for its jobs; a job it should have but lacks,
or a run without a finished training or without test scores, is listed as missing, never dropped in silence.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass
class Run:
    """What one run directory says; ``missing`` names what it lacks for a table row."""

    path: Path
    overrides: list[str] = field(default_factory=list)
    metric: str = ""
    dev: float | None = None
    epochs: int | None = None
    best_epoch: int | None = None
    wall_s: float | None = None
    commits: list[str] = field(default_factory=list)
    machines: list[str] = field(default_factory=list)  # what each invocation ran on (machine_label)
    test: dict[str, dict[str, float]] = field(default_factory=dict)  # scores file -> metric -> value
    missing: list[str] = field(default_factory=list)

    @property
    def seed(self) -> str:
        return next((o.split("=", 1)[1] for o in self.overrides if o.startswith("seed=")), "default")

    @property
    def setting(self) -> tuple[str, ...]:
        """The overrides except the seed and the progress bar: runs with the same setting are seeds of one
        configuration."""
        return tuple(o for o in self.overrides if not o.startswith(("seed=", "trainer.progress_bar=")))


def run_dirs(paths: list[str | Path]) -> tuple[list[Path], list[str]]:
    """The run directories among ``paths`` (a sweep directory stands for its numbered jobs) and the notes about
    jobs a sweep should have (its ``multirun.yaml``) but lacks."""
    found, notes = [], []
    for path in map(Path, paths):
        if (path / "metrics.jsonl").exists() or (path / ".hydra").is_dir():
            found.append(path)
            continue
        jobs = sorted((p for p in path.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)) \
            if path.is_dir() else []
        if not jobs:
            notes.append(f"{path}: not a run or sweep directory (no metrics.jsonl, .hydra/ or numbered jobs)")
            continue
        found += jobs
        expected = sweep_size(path / "multirun.yaml")
        absent = sorted(set(range(expected or 0)) - {int(p.name) for p in jobs})
        if absent:
            notes.append(f"{path}: jobs {', '.join(map(str, absent))} of {expected} are missing (not started yet, "
                         "or the sweep stopped)")
    return found, notes


def sweep_size(multirun_yaml: Path) -> int | None:
    """How many jobs a basic-launcher sweep has: the product of the comma-separated choices of its overrides."""
    if not multirun_yaml.exists():
        return None
    overrides = yaml.safe_load(multirun_yaml.read_text(encoding="utf-8"))["hydra"]["overrides"]["task"]
    size = 1
    for override in overrides:
        value = override.split("=", 1)[1] if "=" in override else ""
        if not value.startswith("[") and "," in value:
            size *= len(value.split(","))
    return size


def read_run(path: Path, score_files: list[str]) -> Run:
    """One run directory as a :class:`Run`."""
    run = Run(path)
    hydra = path / ".hydra"
    if (hydra / "overrides.yaml").exists():
        run.overrides = [str(o) for o in yaml.safe_load((hydra / "overrides.yaml").read_text(encoding="utf-8"))]
    records = _records(path / "metrics.jsonl")
    run.metric = _metric(hydra / "config.yaml", records)
    if not records:
        run.missing.append("no evaluation in metrics.jsonl (not started, or killed before its first)")
    else:
        best = [r for r in records if r.get("best")][-1] if any(r.get("best") for r in records) else records[-1]
        run.dev, run.best_epoch, run.epochs = best.get(f"dev_{run.metric}"), best["epoch"], records[-1]["epoch"]
    _read_provenance(run)
    for name in score_files:
        data = json.loads((path / "scores" / name).read_text(encoding="utf-8")) \
            if (path / "scores" / name).exists() else None
        if data is None:
            run.missing.append(f"no scores/{name} (python scripts/evaluate.py checkpoint={path}/checkpoints/best.pt "
                               f"split={name.split('.')[0]}{_options(name)})")
        else:
            run.test[name] = data["scores"]
    return run


def _metric(config: Path, records: list[dict]) -> str:
    """The dev metric that selected the checkpoint: written in each record since run.json exists; before, the
    task's ``metric`` setting or its class's."""
    if records and records[-1].get("metric"):
        return str(records[-1]["metric"])
    task = yaml.safe_load(config.read_text(encoding="utf-8"))["task"] if config.exists() else {}
    if task.get("metric"):
        return str(task["metric"])
    from nlpseq.tasks import TASKS  # imports torch: only for runs that predate the record's "metric"

    return str(getattr(TASKS[task["name"]], "metric", "")) if task.get("name") in TASKS else ""


def _records(metrics: Path) -> list[dict]:
    if not metrics.exists():
        return []
    return [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines() if line.strip()]


def _options(name: str) -> str:
    """``test.beam=1.json`` -> `` beam=1`` (the evaluate.py options that file name stands for)."""
    return "".join(f" {part}" for part in name.removesuffix(".json").split(".")[1:] if "=" in part)


def machine_label(invocation: dict) -> str:
    """What a wall time was measured on: the CPU model, the GPU's before it when training ran on one, and the
    number of processes when more than one (``NVIDIA H200 + AMD EPYC, 2 processes``)."""
    device, processes = invocation.get("device", "cpu"), int(invocation.get("processes", 1))
    label = str(invocation["cpu"]) if device == "cpu" else f"{device} + {invocation['cpu']}"
    return label + (f", {processes} processes" if processes > 1 else "")


def _read_provenance(run: Run) -> None:
    """Commit, CPU and wall time from ``run.json``; runs trained before it existed: the wall time from the
    ``finished in X min`` lines of ``train.log``. An unfinished training is missing."""
    record = run.path / "run.json"
    invocations = json.loads(record.read_text(encoding="utf-8"))["runs"] if record.exists() else []
    run.commits = list(dict.fromkeys(str(r["commit"]) for r in invocations if r.get("commit")))
    run.machines = list(dict.fromkeys(machine_label(r) for r in invocations if r.get("cpu")))
    if invocations and invocations[-1].get("finished", invocations[-1].get("wall_s") is not None):
        run.wall_s = sum(float(r.get("wall_s") or 0.0) for r in invocations)
    elif not invocations and (run.path / "train.log").exists():
        minutes = re.findall(r"finished in ([0-9.]+) min", (run.path / "train.log").read_text(encoding="utf-8"))
        run.wall_s = 60 * sum(map(float, minutes)) if minutes else None
    if run.wall_s is None and _records(run.path / "metrics.jsonl"):
        run.missing.append("training not finished (no wall time: still running, or killed; run it again to "
                           "resume)")


def mean_std(values: list[float], digits: int = 2) -> str:
    """``mean ± standard deviation`` (sample, n - 1); one value alone has no deviation to show."""
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def sweep_command(runs: list[Run]) -> str:
    """The one ``-m`` command that trains ``runs`` (their overrides, the seeds joined by commas)."""
    seeds = ",".join(dict.fromkeys(r.seed for r in runs if r.seed != "default"))
    parts = [*runs[0].setting, *([f"seed={seeds}"] if seeds else [])]
    return "python scripts/train.py " + ("-m " if "," in seeds else "") + " ".join(parts)


def _score_header(score_file: str, metric: str, selection: str) -> str:
    """``test bleu`` for test.json; evaluate.py's dev.json says so when the training's dev column has the same name
    (translation selects on greedy BLEU, evaluate.py scores with the checkpoint's beam)."""
    header = f"{score_file.removesuffix('.json')} {metric}"
    return f"{header} (evaluate.py)" if header == selection else header


def table(runs: list[Run], score_files: list[str], metrics: list[str] | None, commit: str | None = None,
          cpu: str | None = None) -> list[str]:
    """The header and one row per configuration (runs grouped by their overrides without the seed)."""
    groups: dict[tuple[str, ...], list[Run]] = {}
    for run in runs:
        groups.setdefault(run.setting, []).append(run)
    shown = metrics or list(dict.fromkeys(r.metric for r in runs if r.metric))
    columns = [(name, m) for name in score_files for m in shown]
    selection = f"dev {'/'.join(dict.fromkeys(r.metric for r in runs))}"
    head = ["configuration", "seeds", selection, *(_score_header(name, m, selection) for name, m in columns),
            "epochs (best)", "wall time per run", "command", "commit"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for setting, group in groups.items():
        done = [r for r in group if not r.missing]
        commits = ", ".join(dict.fromkeys(c for r in done for c in (r.commits or [commit or "unknown"])))
        machines = ", ".join(dict.fromkeys(m for r in done for m in (r.machines or [cpu or "CPU unknown"])))
        walls = [r.wall_s / 60 for r in done if r.wall_s is not None]
        cells = [" ".join(setting) or "defaults", ", ".join(r.seed for r in done) or "none",
                 mean_std([r.dev for r in done if r.dev is not None]),
                 *(mean_std([r.test[name][m] for r in done if m in r.test.get(name, {})]) for name, m in columns),
                 ", ".join(f"{r.epochs} ({r.best_epoch})" for r in done),
                 f"{mean_std(walls, 1)} min ({machines})" if walls else "–", f"`{sweep_command(group)}`", commits]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def summarize(paths: list[str], score_files: list[str], metrics: list[str] | None = None, commit: str | None = None,
              cpu: str | None = None) -> tuple[str, int]:
    """The table and the missing runs as text, and how many runs are missing (0 when all are complete)."""
    dirs, notes = run_dirs(paths)
    runs = [read_run(d, score_files) for d in dirs]
    notes += [f"{r.path} (seed {r.seed}): {'; '.join(r.missing)}" for r in runs if r.missing]
    text = "\n".join(table(runs, score_files, metrics, commit, cpu)) if runs else "no run directories"
    if notes:
        text += "\n\nmissing (left out of the means above):\n" + "\n".join(f"- {n}" for n in notes)
    return text, len(notes)
