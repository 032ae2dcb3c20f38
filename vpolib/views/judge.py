"""Figures of the judge's verdicts: pass rates per principle, one colour per method."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns


def plot_pass_rates(rates, path: str | Path, title: str):
    """:func:`~vpolib.judge.pass_rates` by method as bars, one colour per method; saved to ``path`` and returned."""
    frame = rates.reset_index().melt(id_vars=rates.index.name, var_name="principle", value_name="pass rate")
    fig, ax = plt.subplots(figsize=(6, 3.2))
    sns.barplot(data=frame, x="principle", y="pass rate", hue=rates.index.name, ax=ax)
    ax.set(ylim=(0, 1), title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig
