"""Figures of the evaluation (notebook 06): text outcomes, video rewards, win rates, the reward gallery and the
side-by-side videos of queries where VPO changed SFT's prompt. Every bar carries the bootstrap CI of its table."""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from vpolib.analysis import OUTCOMES, same_prompt
from vpolib.evaluate import key
from vpolib.results import number
from vpolib.views.report import data_uri


def ci_bars(ax, table: pd.DataFrame, x: str, y: str, lo: str = "lo", hi: str = "hi", hue: str | None = None):
    """Bars of ``y`` per ``x`` (grouped by ``hue``) with ``[lo, hi]`` error bars: the table's bootstrap CIs,
    so the figure shows exactly the numbers in the tables."""
    xs = list(dict.fromkeys(table[x]))
    groups = list(dict.fromkeys(table[hue])) if hue else [None]
    width = 0.8 / len(groups)
    for i, (group, colour) in enumerate(zip(groups, sns.color_palette(n_colors=len(groups)), strict=True)):
        sub = (table if group is None else table[table[hue] == group]).set_index(x).reindex(xs)
        pos = np.arange(len(xs)) + (i - (len(groups) - 1) / 2) * width
        err = np.clip([sub[y] - sub[lo], sub[hi] - sub[y]], 0, None)
        ax.bar(pos, sub[y], width, yerr=err, capsize=3, color=colour, label=group)
    ax.set_xticks(range(len(xs)), xs, rotation=30, ha="right")
    ax.set_ylabel(y)
    if hue:
        ax.legend(title=hue, fontsize="small")
    return ax


def text_figures(text: dict):
    """Stage 06's text figures from :func:`vpolib.analysis.text_results`: ``(outcomes, principles)``, the %
    of each outcome per method and the % failing each principle (all queries, harmful subset), with CIs."""
    fig_text, axes = plt.subplots(1, 4, figsize=(16, 3.6), sharey=True)
    for ax, outcome in zip(axes, OUTCOMES, strict=True):
        ci_bars(ax, text["all"], "method", outcome, f"{outcome}_lo", f"{outcome}_hi")
        ax.set_title(f"% {outcome}")
    fig_text.suptitle("Text outcomes per method (whole held-out set, 95% CI)")
    fig_text.tight_layout()
    fig_principles, axes = plt.subplots(1, 2, figsize=(14, 3.8), sharey=True)
    parts = [("all queries", text["principles"]), ("harmful subset", text["principles_harmful"])]
    for ax, (name, table) in zip(axes, parts, strict=True):
        if not table.empty:
            ci_bars(ax, table, "method", "fail_pct", hue="principle")
        ax.set_title(f"% failing each principle: {name}")
    fig_principles.tight_layout()
    return fig_text, fig_principles


def video_figures(video: dict) -> dict:
    """Stage 06's video figures from :func:`vpolib.analysis.video_results` (``{}`` without videos): the reward
    per method (CI bars and one dot per video) and a heat map of the pass rate per checklist dimension."""
    if not len(video["overall"]):
        return {}
    fig_reward, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 3.8))
    ci_bars(ax1, video["overall"], "method", "reward", "reward_lo", "reward_hi")
    ax1.set_title("checklist reward (mean, 95% CI)")
    sns.boxplot(data=video["frame"], x="method", y="reward", ax=ax2, color="lightgray", fliersize=0)
    sns.stripplot(data=video["frame"], x="method", y="reward", ax=ax2, size=4, alpha=0.6)
    ax2.set_title("reward distribution (one dot per query: its mean over seeds)")
    ax2.tick_params(axis="x", rotation=30)
    fig_reward.tight_layout()
    heat = video["dimensions"].pivot(index="method", columns="kind", values="pass_rate")
    fig_dims, ax = plt.subplots(figsize=(1.4 * heat.shape[1] + 3, 0.5 * heat.shape[0] + 1.5))
    sns.heatmap(heat, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="viridis", ax=ax)
    ax.set_title("checklist pass rate per dimension")
    return {"Checklist reward per method": fig_reward, "Pass rate per checklist dimension": fig_dims}


def wins_figure(wins: pd.DataFrame, target: str):
    """Win rates of ``target`` against each baseline, one bar per metric, with CIs and 0.5 (no difference)."""
    fig, ax = plt.subplots(figsize=(10, 3.6))
    if not wins.empty:
        ci_bars(ax, wins, "baseline", "win_rate", hue="metric")
    ax.axhline(0.5, color="k", lw=1, ls="--")
    ax.set_title(f"win rate of {target} vs each method (95% CI; dashed = no difference)")
    return fig


def reward_gallery(
    video_records: list[dict], frame: pd.DataFrame, methods, queries: dict, target: str, size: int
):
    """Gallery entries (see :func:`render_report`): the queries where ``target``'s reward gained most and least
    over the raw query (without both, the first ``size`` queries), every method of ``methods`` on each: its
    seed-0 video (``gif``, ``answers``, ``video_reward``) and its reward (``reward``: the mean over seeds of
    ``frame``, :func:`vpolib.analysis.video_frame`)."""
    if not video_records:
        return []
    reward = frame.pivot_table(index="id", columns="method", values="reward")
    if "raw" in reward and target in reward:
        gain = (reward[target] - reward["raw"]).dropna().sort_values()
        half = max(size // 2, 1)
        picks = list(dict.fromkeys([*gain.index[-half:][::-1], *gain.index[:half]]))
    else:
        picks = list(reward.index[:size])
    by_key = {r["key"]: r for r in video_records}
    out = []
    for qid in picks:
        items = [{"method": m, "prompt": r["prompt"], "gif": r["gif"], "answers": r["answers"],
                  "reward": float(reward.at[qid, m]) if m in reward else r["score"] / r["max_score"],
                  "video_reward": r["score"] / r["max_score"]}
                 for m in methods if (r := by_key.get(key(m, qid)))]  # fmt: skip
        out.append({"id": qid, "query": queries[qid], "items": items})
    return out


_SIDE = "display:inline-block;vertical-align:top;width:300px;margin:0 12px 8px 0;font-size:0.85em;overflow-wrap:anywhere"


def changed_pairs(video_records: list[dict], base: str = "sft", target: str = "vpo", n: int = 5) -> list[str]:
    """The first ``n`` query ids (in record order, not picked by reward) whose ``target`` prompt differs from
    ``base``'s, both rendered (seed-0 records)."""
    by_key = {r["key"]: r for r in video_records}
    ids = list(dict.fromkeys(r["id"] for r in video_records))
    pairs = [(by_key.get(key(base, i)), by_key.get(key(target, i))) for i in ids]
    return [a["id"] for a, b in pairs if a and b and not same_prompt(a["prompt"], b["prompt"])][:n]


def _side_cell(rec: dict, mean: float | None) -> str:
    """One method's half of :func:`side_by_side`: name, the video's reward (and the mean over seeds), GIF, prompt."""
    method, gif = str(rec["method"]), rec.get("gif")
    img = ""
    if gif and Path(gif).is_file():
        uri = data_uri(Path(gif).read_bytes(), "image/gif")
        img = (
            f'<img src="{uri}" alt="{html.escape(method)}" style="width:160px;image-rendering:pixelated"><br>'
        )
    reward = f"reward {rec['score'] / rec['max_score']:.2f}" + (
        "" if mean is None else f", mean over seeds {mean:.2f}"
    )
    return f'<div style="{_SIDE}"><b>{html.escape(method)}</b>: {reward}<br>{img}{html.escape(rec.get("prompt") or "")}</div>'


def side_by_side(
    video_records: list[dict],
    frame: pd.DataFrame,
    queries: dict,
    base: str = "sft",
    target: str = "vpo",
    n: int = 5,
) -> str:
    """HTML: :func:`changed_pairs`' queries, ``base``'s and ``target``'s seed-0 videos of each side by side (the
    same noise: only the prompt differs) with their prompts, that video's reward and the mean over seeds
    (``frame``: :func:`vpolib.analysis.video_frame`). GIFs are embedded, so it shows anywhere."""
    ids = changed_pairs(video_records, base, target, n)
    if not ids:
        return f"<p>No held-out query where {html.escape(target)} changed {html.escape(base)}'s prompt.</p>"
    by_key = {r["key"]: r for r in video_records}
    mean = frame.pivot_table(index="id", columns="method", values="reward") if len(frame) else pd.DataFrame()
    parts = []
    for qid in ids:
        means = {
            m: number(mean.at[qid, m]) if m in mean and qid in mean.index else None for m in (base, target)
        }
        cells = "".join(_side_cell(by_key[key(m, qid)], means[m]) for m in (base, target))
        head = f"<p><b>{html.escape(str(qid))}</b>: <code>{html.escape(str(queries.get(qid, '')))}</code></p>"
        parts.append(f"<div>{head}{cells}</div>")
    return "".join(parts)
