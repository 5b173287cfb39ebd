"""Figures written as PNG files (matplotlib, imported only when a figure is drawn)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def plot_confusion_matrix(confusion: Sequence[Sequence[int]], names: Sequence[str], path: str | Path,
                          title: str = "") -> Path:
    """Save the confusion matrix (rows gold, columns predicted) as a heatmap with the counts written in."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    n = len(names)
    fig, ax = plt.subplots(figsize=(1.2 * n + 2.5, 1.1 * n + 2))
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
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
