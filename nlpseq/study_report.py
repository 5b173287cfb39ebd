"""The memory study's report: ``report.md`` (tables) and PNG plots, written from the study's results."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from nlpseq.study import Result

LOWER_IS_BETTER = {"mse"}


def _mean(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g}"


def results_table(results: list[Result], cells: list[str]) -> str:
    """Rows problem × T; a column per cell (test metric, mean over seeds) and the memoryless level."""
    scores: dict[tuple, list[float]] = defaultdict(list)
    for r in results:
        scores[r.problem, r.length, r.cell].append(r.score)
    keys = sorted({(r.problem, r.length, r.metric, r.chance) for r in results})
    lines = ["| problem | T | metric | " + " | ".join(cells) + " | memoryless |",
             "| --- | ---: | --- | " + " | ".join("---:" for _ in cells) + " | ---: |"]
    for problem, length, metric, level in keys:
        shown = "MSE (lower is better)" if metric in LOWER_IS_BETTER else "accuracy %"
        cols = [_mean(scores[problem, length, c]) if scores[problem, length, c] else "-" for c in cells]
        lines.append(f"| {problem} | {length} | {shown} | " + " | ".join(cols) + f" | {level:.4g} |")
    return "\n".join(lines)


def ratio_table(results: list[Result], cells: list[str]) -> str:
    """‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ per cell, at initialisation and after training (first seed)."""
    lines = ["| problem | T | " + " | ".join(f"{c} init / trained" for c in cells) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in cells) + " |"]
    first = {}
    for r in results:
        first.setdefault((r.problem, r.length, r.cell), r)
    for problem, length in sorted({(r.problem, r.length) for r in results}):
        cols = []
        for c in cells:
            r = first.get((problem, length, c))
            cols.append(f"{r.ratio_init:.2g} / {r.ratio_trained:.2g}" if r else "-")
        lines.append(f"| {problem} | {length} | " + " | ".join(cols) + " |")
    return "\n".join(lines)


def plot_flows(results: list[Result], cells: list[str], folder: Path) -> list[Path]:
    """Per problem and T: ‖∂L/∂h_t‖ against t, log scale, one colour per cell; init solid, trained dashed."""
    from nlpseq.plots import _figure, _save

    paths = []
    for problem, length in sorted({(r.problem, r.length) for r in results}):
        fig, ax = _figure((8, 4.5))
        for k, cell in enumerate(cells):
            r = next((r for r in results if (r.problem, r.length, r.cell) == (problem, length, cell)), None)
            if r is None:
                continue
            steps = range(1, len(r.flow_init) + 1)
            ax.plot(steps, r.flow_init, color=f"C{k}", label=f"{cell}, at initialisation")
            ax.plot(steps, r.flow_trained, color=f"C{k}", linestyle="--", label=f"{cell}, trained")
        ax.set_yscale("log")
        ax.set_xlabel("time step t")
        ax.set_ylabel("‖∂L/∂h_t‖ (batch mean)")
        ax.legend(fontsize=8)
        paths.append(_save(fig, ax, folder / f"gradient_flow_{problem}_T{length}.png",
                           f"gradient reaching each step: {problem}, T={length}"))
    return paths


def plot_scores(results: list[Result], cells: list[str], folder: Path) -> list[Path]:
    """Per problem: test metric against T, one line per cell (mean over seeds), the memoryless level dotted."""
    from nlpseq.plots import _figure, _save

    paths = []
    for problem in sorted({r.problem for r in results}):
        rows = [r for r in results if r.problem == problem]
        fig, ax = _figure((6, 4))
        for k, cell in enumerate(cells):
            lengths = sorted({r.length for r in rows if r.cell == cell})
            means = [statistics.mean(r.score for r in rows if r.cell == cell and r.length == n) for n in lengths]
            ax.plot(lengths, means, marker="o", color=f"C{k}", label=cell)
        lengths = sorted({r.length for r in rows})
        ax.plot(lengths, [next(r.chance for r in rows if r.length == n) for n in lengths], "k:", label="memoryless")
        ax.set_xlabel("T (steps to remember across)")
        ax.set_ylabel("test MSE" if rows[0].metric in LOWER_IS_BETTER else "test accuracy %")
        ax.legend(fontsize=8)
        paths.append(_save(fig, ax, folder / f"score_vs_T_{problem}.png", f"{problem}: test score against T"))
    return paths


def plot_clipping(curves: dict[str, list[float]], folder: Path, title: str) -> Path:
    """The gradient norm per step (log scale) of the RNN with and without clipping."""
    from nlpseq.plots import _figure, _save

    fig, ax = _figure((8, 4))
    for k, (name, norms) in enumerate((n, v) for n, v in curves.items() if not n.endswith(" loss")):
        ax.plot(range(1, len(norms) + 1), norms, color=f"C{k}", linewidth=0.8, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("gradient norm before clipping")
    ax.legend(fontsize=8)
    return _save(fig, ax, folder / "clipping.png", title)


def write_report(folder: Path, results: list[Result], cells: list[str], curves: dict[str, list[float]],
                 command: str, clip_title: str) -> Path:
    """``report.md`` and the plots in ``folder``."""
    flows, scores = plot_flows(results, cells, folder), plot_scores(results, cells, folder)
    clipping = plot_clipping(curves, folder, clip_title)
    finals = {n: (statistics.mean(v[-50:]) if v else float("nan")) for n, v in curves.items() if n.endswith(" loss")}
    peaks = {n: max(v, default=float("nan")) for n, v in curves.items() if not n.endswith(" loss")}
    text = [f"# The memory study\n\n`{command}`\n", "## Test scores (mean over seeds)\n", results_table(results, cells),
            "\n## Gradient reaching the first step: ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖\n", ratio_table(results, cells),
            "\n## Plots\n", *(f"- ![{p.stem}]({p.name})" for p in flows + scores + [clipping]),
            f"\n## Clipping\n\n{clip_title}. Largest gradient norm: "
            + ", ".join(f"{n} {v:.3g}" for n, v in peaks.items()) + "; mean training loss of the last 50 steps: "
            + ", ".join(f"{n[:-5]} {v:.4g}" for n, v in finals.items()) + ".\n"]
    path = folder / "report.md"
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path
