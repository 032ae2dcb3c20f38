"""Views of the critique-and-refine log (notebook 02): first verdicts per teacher, why prompts were rejected,
before/after examples, and the stage's ``report.md``."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from vpolib.templates import PRINCIPLES


def first_pass_frame(rows: list[dict]) -> pd.DataFrame:
    """One row per logged candidate: its teacher kind (``llm0`` -> ``llm``), status, and each principle's first
    verdict (True / False / None)."""
    return pd.DataFrame(
        [
            {
                "teacher": r["teacher"].rstrip("0123456789"),
                "status": r["status"],
                **{p: r["verdict"]["principles"].get(p) for p in PRINCIPLES},
            }
            for r in rows
        ]
    )


def plot_reasons(reasons: dict[str, int], path: str | Path):
    """Why first prompts were rejected: one bar per reason (``critique_summary(...)["reasons"]``); saved and
    returned."""
    frame = pd.Series(reasons, dtype=int).rename_axis("reason").reset_index(name="count")
    fig, ax = plt.subplots(figsize=(7, 0.4 * max(3, len(frame)) + 1))
    if len(frame):
        sns.barplot(data=frame, y="reason", x="count", hue="reason", legend=False, ax=ax)
    ax.set_title("Why first prompts were rejected")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


def failure_examples(rows: list[dict], per_reason: int = 1) -> list[dict]:
    """For each failure reason, the first candidates with it: query, original prompt, refinement, outcome."""
    seen: dict[str, int] = {}
    out = []
    for r in rows:
        for reason in r["verdict"]["reasons"]:
            if seen.get(reason, 0) < per_reason:
                seen[reason] = seen.get(reason, 0) + 1
                out.append(
                    {
                        "reason": reason,
                        "query": r["query"],
                        "before": r["prompt"],
                        "after": r.get("refined"),
                        "status": r["status"],
                    }
                )
    return out


def report_markdown(title: str, judge: str, refiner: str, summary: dict, rows: list[dict]) -> str:
    """``report.md``: the summary counts, the reasons histogram, and one before/after example per reason."""
    lines = [f"# {title}", "", f"judge: {judge}; refiner: {refiner}", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary.items() if k != "reasons"]
    lines += ["", "## Reasons", "", "| reason | count |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary["reasons"].items()]
    lines += ["", "## Before / after", ""]
    lines += [
        f"- **{e['reason']}** ({e['status']}): `{e['query']}`\n  - before: {e['before']}\n  - after: {e['after']}"
        for e in failure_examples(rows)
    ]
    return "\n".join(lines) + "\n"
