"""Views of the preference rounds: one row per round, and the dev reward per round (0 = SFT).

They show :func:`vpolib.preference.train_rounds`' records (or :func:`vpolib.preference.stage_summary`'s rounds);
metrics.json keeps :func:`vpolib.preference.round_metrics` instead.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd


def _round(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def round_table(rounds: list[dict]):
    """:func:`vpolib.preference.train_rounds` as a table: one row per round (0 = SFT) with its dev reward, the
    share of dev prompts changed since the round before, its pairs per track, and what the round cost."""
    rows = []
    for r in rounds:
        c = r.get("collected") or {}
        rows.append({"round": r["round"], "dev reward": round(r["dev_reward"], 4),
                     "dev prompts changed": _round(r["dev_changed"]), "real dev pass": _round(r.get("dev_text_pass")),
                     "real dev harmful unsafe": _round(r.get("dev_text_unsafe_harmful")),
                     "train pairs": r.get("train"), "text pairs": c.get("text", {}).get("pairs"),
                     "video pairs": c.get("video", {}).get("pairs"), "videos rendered": c.get("videos_rendered"),
                     "tokens generated": c.get("tokens_generated"),
                     "steps": r["info"]["steps"] if "info" in r else None, "seconds": r.get("seconds")})  # fmt: skip
    return pd.DataFrame(rows)


def plot_rounds(rounds: list[dict]):
    """The dev reward, the share of real dev prompts the judge passes (when judged) and the share of changed dev
    prompts per round (0 = SFT), from the rounds' records. Returns the figure."""
    x = [r["round"] for r in rounds]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.2))
    axes[0].plot(x, [r["dev_reward"] for r in rounds], marker="o")
    axes[0].set(title="ShapesWorld dev reward per round (0 = SFT)", xlabel="round", ylabel="mean reward")
    passed = [r.get("dev_text_pass") for r in rounds]
    axes[1].plot(x, [float("nan") if p is None else p for p in passed], marker="o", color="tab:green")
    axes[1].set(title="real dev prompts the judge passes", xlabel="round", ylabel="share", ylim=(0, 1))
    axes[2].bar(x, [r["dev_changed"] or 0 for r in rounds])
    axes[2].set(title="ShapesWorld dev prompts changed since the round before", xlabel="round", ylim=(0, 1))
    for ax in axes:
        ax.set_xticks(x)
    fig.tight_layout()
    return fig


def plot_sizes(rows: list[dict]):
    """The preference data sizes on the dev split (``scripts/dev_sizes.py`` rows): each variant's dev reward minus
    SFT's with its paired 95% CI, one line a variant, labelled with the videos and pairs it took. Returns the figure."""
    rows = [r for r in rows if r.get("vs_sft")]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.2))
    for y, r in enumerate(rows):
        g = r["vs_sft"]
        ax.errorbar(
            g["diff"],
            y,
            xerr=[[g["diff"] - g["lo"]], [g["hi"] - g["diff"]]],
            fmt="o",
            capsize=3,
            color="tab:blue",
        )
    ax.set_yticks(
        range(len(rows)), [f"{r['variant']} ({r['videos']:,} videos, {r['train_pairs']} pairs)" for r in rows]
    )
    ax.invert_yaxis()
    ax.axvline(0, color="grey", lw=0.8)
    ax.set(
        title="one preference round from SFT: dev reward minus SFT's (95% CI)",
        xlabel="dev reward minus SFT's",
    )
    fig.tight_layout()
    return fig
