"""Views of stage 04's feedback: the pair gallery, the score and item-agreement figures, and the pair flow table.

They show what :mod:`vpolib.scoring`, :mod:`vpolib.dominance` and :mod:`vpolib.preference` computed; none of them
is written into metrics.json.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from vpolib.checklist import answer_value
from vpolib.dominance import REASONS, explain, group_by_query, verdicts


def answer_matrix(scored: list[dict], kinds: dict[str, dict[str, str]] | None = None, max_items: int = 64):
    """Videos x checklist items, 1 = yes, 0 = no, NaN = missing or not asked (the ``max_items`` most asked).

    With ``kinds`` (query id -> {question id -> kind}) the columns are kinds and a cell is the share of
    "yes" among that video's items of the kind: use it when question ids differ from query to query.
    """
    rows = []
    for v in scored:
        if kinds is None:
            rows.append({q: answer_value(a) for q, a in v["answers"].items()})
            continue
        by_kind: dict[str, list] = defaultdict(list)
        for q, a in v["answers"].items():
            if answer_value(a) is not None:
                by_kind[kinds[v["id"]].get(q, q)].append(answer_value(a))
        rows.append({k: sum(xs) / len(xs) for k, xs in by_kind.items()})
    table = pd.DataFrame(rows, index=[v["key"] for v in scored], dtype=float)
    return table[table.notna().sum().sort_values(ascending=False).index[:max_items]]


def pair_flow(counts: dict, pairs: list[dict], text: list[dict], contest: dict, merge: dict, cap: int):
    """The path from compared videos to merged pairs, one step a row (``counts``:
    :func:`vpolib.dominance.pair_counts`)."""
    rows = [
        ("video pairs compared (unordered, same query)", counts["video_pairs_compared"]),
        *[(f"  dropped: {reason}", n) for reason, n in counts["video_pairs_dropped"].items()],
        ("valid video pairs", counts["video_pairs_valid"]),
        ("queries with at least one valid pair", len({p["id"] for p in pairs})),
        ("queries with under 2 videos", counts["queries_too_few_videos"]),
        (f"video pairs after the cap ({cap}/query) -> video_pairs.jsonl", counts["video_pairs_written"]),
        ("text pairs (on-policy: refined SFT samples)", len(text)),
        ("queries with both a text and a video pair", contest["both"]),
        ("  ... kept the text pair / the video pair", f"{contest['text_won']} / {contest['video_won']}"),
        *[
            (f"merged: {src} kept / dropped by the cap", f"{s['kept']} / {s['dropped_cap']}")
            for src, s in merge.items()
        ],
        ("merged pairs -> pairs.jsonl", sum(s["kept"] for s in merge.values())),
    ]
    return pd.DataFrame(rows, columns=["step", "count"])


MARKS = {"yes": "✓", "no": "✗", None: "?"}


def pair_gallery(
    scored: list[dict], checklists: dict, pairs: list[dict], merged: list[dict], margin: float, size: int
):
    """The gallery's queries (those with a valid pair first), each as ``(heading, html, verdicts)``: the k videos
    with their prompt, answers (✓ yes, ✗ no, ? missing) and score as an HTML table, then the verdict on every
    pair of videos and the pair the merge kept, in Markdown."""
    groups = group_by_query(scored)
    with_pair = [q for q in groups if any(p["id"] == q for p in pairs)]
    kept_video = {p["id"]: p["why"] for p in merged if p["source"] == "video"}
    out = []
    for qid in (with_pair + [q for q in groups if q not in with_pair])[:size]:
        group, questions = groups[qid], checklists.get(qid, [])
        table = pd.DataFrame(
            [
                {
                    "k": v["k"],
                    "video": f'<img src="{v["video"]}" width="96">',
                    "prompt": v["prompt"][:240],
                    **{q["text"][:40]: MARKS[v["answers"].get(q["id"])] for q in questions[:12]},
                    "score": f"{v['score']:.3g} / {v['max_score']:.3g}",
                }
                for v in group
            ]
        )
        lines = [
            "- pair: " + explain(v["chosen"], v["rejected"])
            if v["reason"] is None
            else f"- k={v['chosen']['k']} vs k={v['rejected']['k']}: no pair ({v['reason']})"
            for v in verdicts(group, margin)
        ]
        kept = kept_video.get(qid) or ("slot taken by a text pair" if qid in with_pair else "none")
        out.append(
            (
                f"### `{qid}` · {group[0]['query']}",
                table.to_html(escape=False, index=False),
                "\n".join(lines) + f"\n\n**Pair kept in the merge:** {kept}",
            )
        )
    return out


def plot_scores(frame, dropped: Counter, n_pairs: int, margin: float):
    """Three panels: video score / max_score, best minus worst video per query (the margin dashed), and the
    verdicts on video pairs (:func:`vpolib.dominance.dominant_pairs`' drop counts and the pairs). Returns the
    figure."""
    spread = frame.groupby("id")["fraction"].agg(lambda s: s.max() - s.min())
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.2))
    sns.histplot(frame["fraction"], bins=np.linspace(0, 1, 11), ax=axes[0])
    axes[0].set(title="video score / max_score", xlabel="fraction")
    sns.histplot(spread, bins=np.linspace(0, 1, 11), ax=axes[1])
    axes[1].axvline(margin, ls="--", c="k")
    axes[1].set(title="best minus worst video, per query", xlabel="fraction")
    reasons = pd.Series({r: dropped.get(r, 0) for r in (*REASONS, "too_few_videos")} | {"pair": n_pairs})
    sns.barplot(x=reasons.values, y=reasons.index, ax=axes[2])
    axes[2].set(title="verdicts on video pairs", xlabel="count", ylabel="")
    fig.tight_layout()
    return fig


def plot_item_agreement(scored: list[dict], checklists: dict):
    """The 'yes' rate per checklist item and the item-item correlation over all videos (by question kind when
    question ids differ from query to query, as in ShapesWorld's checklists). Returns the figure."""
    kinds = {qid: {q["id"]: q["kind"] for q in qs} for qid, qs in checklists.items()}
    by_kind = (
        len({k for ks in kinds.values() for k in ks.values()}) > 1
    )  # ids differ per query: compare kinds
    answers = answer_matrix(scored, kinds if by_kind else None)
    labels = {} if by_kind else {q["id"]: q["text"] for qs in checklists.values() for q in qs}
    fig, axes = plt.subplots(1, 2, figsize=(14, max(3, 0.35 * len(answers.columns) + 1.5)))
    names = [f"{c}: {labels[c][:45]}" if c in labels else c for c in answers.columns]
    sns.barplot(x=answers.mean().values, y=names, ax=axes[0])
    axes[0].set(title="'yes' rate per item", xlabel="fraction of videos", ylabel="", xlim=(0, 1))
    sns.heatmap(answers.corr(min_periods=5), vmin=-1, vmax=1, cmap="vlag", ax=axes[1])
    axes[1].set(title="item-item correlation (blank = constant item)")
    fig.tight_layout()
    return fig
