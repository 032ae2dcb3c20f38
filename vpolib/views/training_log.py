"""Figures of a trainer's log history: each logged metric over the steps, train and eval."""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import seaborn as sns


def plot_log(frame, columns: list[str], path: str | os.PathLike, title: str = ""):
    """One panel per logged metric of a :func:`~vpolib.training_log.log_frame` over steps (train and eval as hue);
    saved to ``path`` and returned."""
    columns = [c for c in columns if c in frame]
    fig, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3.2), squeeze=False)
    for ax, col in zip(axes[0], columns, strict=True):
        sns.lineplot(data=frame.dropna(subset=[col]), x="step", y=col, hue="split", marker="o", ax=ax)
        ax.set_title(col)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig
