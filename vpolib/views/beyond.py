"""Figures of the checks beyond the paper (notebook 07): reward on models A and B, the test-time loop's reward
against rounds and videos, and the reward-hacking diagnostics."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from vpolib.diagnostics import with_words
from vpolib.views.evaluation import ci_bars


def plot_models(table: pd.DataFrame):
    """Reward per method on each video model (A trained on, B never seen), with CIs."""
    fig, ax = plt.subplots(figsize=(12, 3.6))
    ci_bars(ax, table, "method", "reward", "reward_lo", "reward_hi", hue="model")
    ax.set_title("checklist reward on video model A (trained on) and B (never seen), 95% CI")
    return fig


def plot_testtime_rounds(rounds: pd.DataFrame):
    """Best and fresh reward of each method against the round and against videos rendered (``None`` if empty)."""
    if not len(rounds):
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.6))
    for (method, g), colour in zip(rounds.groupby("method"), sns.color_palette(), strict=False):
        for col, style in (("best_reward", "-o"), ("fresh_reward", "--s")):
            label = f"{method} {col.split('_')[0]}"
            ax1.plot(g["round"], g[col], style, color=colour, label=label)
            lo, hi = g[col.replace("reward", "lo")], g[col.replace("reward", "hi")]
            ax1.fill_between(g["round"], lo, hi, color=colour, alpha=0.12)
            ax2.plot(g["videos"], g[col], style, color=colour, label=label)
    ax1.set(xlabel="round", ylabel="checklist reward", title="reward against rounds (95% CI)")
    ax2.set(xlabel="videos rendered per query (mean)", title="reward against cost")
    ax1.legend(fontsize=8)
    return fig


def plot_diagnostics(frame: pd.DataFrame, prompts, dims: pd.DataFrame, target: str):
    """Reward against prompt length (one dot per video of ``frame``) and ``target`` - sft per dimension."""
    fig, axes = plt.subplots(1, 2, figsize=(14, 3.8))
    sns.scatterplot(
        data=with_words(frame, prompts), x="words", y="reward", hue="method", ax=axes[0], alpha=0.6, s=18
    )
    axes[0].set_title("reward against prompt length (model A)")
    if len(dims):
        ci_bars(axes[1], dims, "kind", "delta", hue="model")
        axes[1].axhline(0, color="k", lw=1)
    axes[1].set_title(f"pass rate {target} - sft per dimension (95% CI; below 0 = worse)")
    fig.tight_layout()
    return fig
