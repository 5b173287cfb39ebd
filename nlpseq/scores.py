"""``evaluate.py``'s scores as a file: ``RUN/scores/<split>[.option=value...].json`` beside the checkpoints, so
``scripts/summarize.py`` reads test scores instead of someone copying them out of a printed report."""

from __future__ import annotations

import time
from numbers import Number
from pathlib import Path

from nlpseq.provenance import cpu_model, git_commit, write_json

NAMING_OPTIONS = ("beam", "length_penalty")  # options that change the scores (not src=, ref=, attention_plot=)


def scores_name(split: str, options: dict, quantize: bool = False) -> str:
    """``test.json``, ``test.beam=1.json``, ``test.int8.json``: the split and the options that change scores."""
    parts = [split, *(f"{k}={options[k]}" for k in NAMING_OPTIONS if options.get(k) is not None)]
    return ".".join(parts + (["int8"] if quantize else [])) + ".json"


def scores_path(cfg, options: dict) -> Path | None:
    """Where ``evaluate.py`` writes the scores: ``cfg.scores`` when a path; with ``auto`` (the default)
    ``RUN/scores/<name>`` for a named split of a checkpoint in ``RUN/checkpoints/``; None otherwise (``false``,
    a ``file=`` or ``src=`` scored, a checkpoint outside a run directory)."""
    setting = cfg.get("scores", "auto")
    if setting in (None, False) or str(setting).lower() in ("false", "none", "null"):
        return None
    if str(setting) != "auto":
        return Path(str(setting))
    checkpoint = Path(str(cfg.checkpoint))
    if cfg.get("file") or options.get("src") or checkpoint.parent.name != "checkpoints":
        return None
    return checkpoint.parent.parent / "scores" / scores_name(str(cfg.split), options, bool(cfg.get("quantize")))


def numbers(scores: dict) -> dict[str, float]:
    """The numeric scores (a confusion matrix, signatures and texts are left to the printed report)."""
    return {k: float(v) for k, v in scores.items() if isinstance(v, Number) and not isinstance(v, bool)}


def write_scores(path: Path, scores: dict, cfg, options: dict, examples: int) -> None:
    """``path`` (atomically): the numeric scores with the checkpoint, split, options, example count, commit, CPU
    and time they came from."""
    write_json(Path(path), {
        "scores": numbers(scores), "checkpoint": str(cfg.checkpoint), "split": cfg.get("split"),
        "file": cfg.get("file"), "options": {k: v for k, v in options.items() if isinstance(v, (str, int, float))},
        "quantize": bool(cfg.get("quantize")), "examples": examples, "commit": git_commit(), "cpu": cpu_model(),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
