"""Figures of notebook 08: held-out reward against the videos each paradigm rendered, the caption as a ceiling."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns


def plot_reward_vs_budget(table: pd.DataFrame):
    """One point per paradigm (reward, 95% CI) at the videos it rendered; best-of-n joined as a curve; the
    caption's reward as the ceiling line. The x axis is symmetric-log: SFT rendered none."""
    fig, ax = plt.subplots(figsize=(9, 4.2))
    rows = table[table["paradigm"] != "caption"]
    colours = dict(zip(rows["paradigm"], sns.color_palette(n_colors=len(rows)), strict=False))
    for _, r in rows.iterrows():
        x = r["videos"] or 0
        ax.errorbar([x], [r["reward"]], yerr=[[r["reward"] - r["reward_lo"]], [r["reward_hi"] - r["reward"]]],
                    fmt="o", capsize=3, color=colours[r["paradigm"]], label=r["paradigm"])  # fmt: skip
    curve = rows[rows["paradigm"].str.startswith("sft")].sort_values("videos")
    if len(curve) > 1:
        ax.plot(curve["videos"].fillna(0), curve["reward"], ":", color="grey", label="SFT, best of n")
    ceiling = table[table["paradigm"] == "caption"]
    if len(ceiling):
        ax.axhline(float(ceiling["reward"].iloc[0]), color="black", ls="--", lw=1, label="caption (ceiling)")
    ax.set_xscale("symlog", linthresh=10)
    ax.set(xlabel="videos rendered beyond the SFT model (symlog)", ylabel="held-out reward",
           title="reward against videos rendered, 95% CI")  # fmt: skip
    ax.legend(fontsize=8, loc="lower right")
    return fig


def plot_grpo_log(log_history: list[dict]):
    """GRPO's mean reward per logged step (each the mean over that step's sampled prompts); None without rows."""
    rows = pd.DataFrame([r for r in log_history if "reward" in r])
    if not len(rows):
        return None
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(rows["step"], rows["reward"], "-o")
    ax.set(xlabel="GRPO step", ylabel="mean reward of the sampled prompts", title="GRPO training reward")
    return fig
