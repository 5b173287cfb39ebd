"""Figures written as PNG files (matplotlib, imported only when a figure is drawn): confusion matrices,
attention heatmaps and forecasts against the truth."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def plot_confusion_matrix(confusion: Sequence[Sequence[int]], names: Sequence[str], path: str | Path,
                          title: str = "") -> Path:
    """Save the confusion matrix (rows gold, columns predicted) as a heatmap with the counts written in."""
    n = len(names)
    fig, ax = _figure((1.2 * n + 2.5, 1.1 * n + 2))
    image = ax.imshow(confusion, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ax.set_xticks(range(n), labels=names, rotation=30, ha="right")
    ax.set_yticks(range(n), labels=names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    top = max((v for row in confusion for v in row), default=0)
    for i, row in enumerate(confusion):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > top / 2 else "black")
    return _save(fig, ax, path, title)


def plot_attention(weights, source: Sequence[str], output: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Save attention weights ``(len(output), len(source))`` as a heatmap: source pieces along x, output pieces
    along y (row ``i``: where the model looked while writing output piece ``i``)."""
    rows, cols = len(output), len(source)
    fig, ax = _figure((min(0.35 * cols + 2.5, 30), min(0.3 * rows + 2, 30)))
    image = ax.imshow(weights, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    fig.colorbar(image, ax=ax)
    ax.set_xticks(range(cols), labels=list(source), rotation=90)
    ax.set_yticks(range(rows), labels=list(output))
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    return _save(fig, ax, path, title)


def plot_forecasts(history, truth, forecast, band, titles: Sequence[str], path: str | Path, title: str = "") -> Path:
    """One panel per window: its input ``history[k]`` ``(input_length,)``, then ``truth[k]`` and ``forecast[k]``
    ``(horizon,)`` and, when ``band`` ``(windows, horizon, 2)`` is given, the shaded interval between its bounds."""
    fig, axes = _figure((11, 2.6 * len(history)), rows=len(history))
    axes = list(axes) if len(history) > 1 else [axes]
    for k, ax in enumerate(axes):
        past, steps = range(-len(history[k]) + 1, 1), range(1, len(truth[k]) + 1)
        ax.plot(past, history[k], color="0.45", linewidth=1, label="input")
        ax.plot(steps, truth[k], color="black", linewidth=1, label="truth")
        ax.plot(steps, forecast[k], color="tab:red", linewidth=1.2, label="forecast")
        if band is not None:
            ax.fill_between(steps, band[k][:, 0], band[k][:, 1], color="tab:red", alpha=0.2, label="interval")
        ax.axvline(0.5, color="0.7", linestyle=":")
        ax.set_title(titles[k], fontsize=9)
    axes[0].legend(loc="upper left", fontsize=8)
    axes[-1].set_xlabel("time steps from the forecast's start")
    if title:
        fig.suptitle(title)
    return _save(fig, None, path, "")


def _figure(size: tuple[float, float], rows: int = 1):
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    return plt.subplots(rows, 1, figsize=size, squeeze=True)


def _save(fig, ax, path: str | Path, title: str) -> Path:
    import matplotlib.pyplot as plt

    if title and ax is not None:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
