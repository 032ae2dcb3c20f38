"""The failure-case browser of notebook 06: ipywidgets filters over one table of cases.

One case = one (query id, method): its prompt, the judge's outcome and reasons, and (for ShapesWorld
queries) the video's reward, failed checklist dimensions and GIF. Run headless (papermill, tests) the
browser degrades to a static pandas table of the filtered cases.
"""

from __future__ import annotations

import html
import os
import sys
from pathlib import Path

import pandas as pd

from vpolib.analysis import answer_label, text_outcome
from vpolib.checklist import answer_value

CASE_COLUMNS = [
    "id",
    "method",
    "query",
    "prompt",
    "outcome",
    "violated",
    "reasons",
    "reward",
    "failed_dims",
    "answers",
    "gif",
]
STATIC_COLUMNS = [c for c in CASE_COLUMNS if c not in ("answers", "gif")]  # the headless table


def build_cases(
    text_records: list[dict], video_records: list[dict], safety: str = "harmless"
) -> pd.DataFrame:
    """Merge text and video records on (id, method) into the browser's case table.

    A video case shows its seed-0 video (GIF, answers, failed dimensions); its reward is the mean over every
    noise seed the query was rendered with (as :func:`vpolib.analysis.video_frame`)."""
    cases: dict[tuple, dict] = {}
    for rec in text_records:
        passed = rec.get("passed", {})
        reasons = rec.get("reasons", {})
        cases[(rec["id"], rec["method"])] = {
            "id": rec["id"],
            "method": rec["method"],
            "query": rec.get("query", ""),
            "prompt": rec.get("prompt", ""),
            "outcome": text_outcome(rec, safety),
            "violated": [p for p, ok in passed.items() if not ok],
            "reasons": "; ".join(
                f"{p}: {r}" for p, rs in reasons.items() for r in rs if not passed.get(p, True)
            ),
        }
    rewards: dict[tuple, list[float]] = {}
    for rec in sorted(video_records, key=lambda r: -(r.get("seed") or 0)):  # seed 0 last: its video is shown
        if rec.get("max_score"):
            rewards.setdefault((rec["id"], rec["method"]), []).append(rec["score"] / rec["max_score"])
        case = cases.setdefault(
            (rec["id"], rec["method"]),
            {
                "id": rec["id"],
                "method": rec["method"],
                "query": rec.get("query", ""),
                "prompt": rec.get("prompt", ""),
                "outcome": "",
                "violated": [],
                "reasons": "",
            },
        )
        answers, kinds = rec.get("answers", {}), rec.get("kinds", {})
        case.update(
            {
                "reward": sum(r) / len(r) if (r := rewards.get((rec["id"], rec["method"]))) else None,
                "failed_dims": sorted(
                    {kinds.get(q, "other") for q, ok in answers.items() if answer_value(ok) == 0.0}
                ),
                "answers": answers,
                "gif": rec.get("gif"),
            }
        )
    frame = pd.DataFrame(list(cases.values()), columns=CASE_COLUMNS)
    for col in ("violated", "failed_dims"):
        frame[col] = frame[col].apply(lambda v: v if isinstance(v, list) else [])
    return frame


def filter_cases(
    cases: pd.DataFrame,
    method: str | None = None,
    principle: str | None = None,
    dimension: str | None = None,
    score_range: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """Cases of ``method`` that violate ``principle``, fail checklist ``dimension``, with reward in range.

    ``None`` means "any". A score range keeps only cases that have a video reward.
    """
    keep = pd.Series(True, index=cases.index)
    if method:
        keep &= cases["method"] == method
    if principle:
        keep &= cases["violated"].apply(lambda v: principle in v)
    if dimension:
        keep &= cases["failed_dims"].apply(lambda d: dimension in d)
    if score_range is not None:
        reward = pd.to_numeric(cases["reward"], errors="coerce")
        keep &= reward.between(*score_range)
    return cases[keep]


def is_headless() -> bool:
    """True unless a live notebook front end can show widgets.

    ``VPO_HEADLESS=1``/``0`` forces it. Otherwise widgets need an IPython kernel started by a Jupyter
    server (which sets ``JPY_SESSION_NAME``), VS Code or Colab; papermill's kernels are none of these.
    """
    forced = os.environ.get("VPO_HEADLESS")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        from IPython import get_ipython
    except ImportError:
        return True
    shell = get_ipython()
    if shell is None or "IPKernelApp" not in getattr(shell, "config", {}):
        return True
    return not (
        os.environ.get("JPY_SESSION_NAME")
        or "__vsc_ipynb_file__" in shell.user_ns
        or "google.colab" in sys.modules
    )


def show_browser(cases: pd.DataFrame, headless: bool | None = None, max_rows: int = 15):
    """Display the interactive browser, or (headless) a static table of failures; returns what it showed."""
    from IPython.display import display

    if headless if headless is not None else is_headless():
        failures = cases[
            (cases["outcome"].isin(["unsafe", "imprecise", "refusal"]))
            | (cases["failed_dims"].apply(len) > 0)
        ]
        table = failures[STATIC_COLUMNS].head(max_rows)
        display(table)
        return table
    return _widget(cases)


def _options(values) -> list:
    return [("any", None)] + [(str(v), v) for v in sorted(set(values))]


def _widget(cases: pd.DataFrame):
    """Filters (method, principle, dimension, reward range) -> a list of query ids -> side-by-side detail."""
    import ipywidgets as w
    from IPython.display import HTML, Image, display

    method = w.Dropdown(options=_options(cases["method"]), index=0, description="method")
    principle = w.Dropdown(
        options=_options(p for v in cases["violated"] for p in v), index=0, description="violates"
    )
    dimension = w.Dropdown(
        options=_options(d for v in cases["failed_dims"] for d in v), index=0, description="fails dim"
    )
    score = w.FloatRangeSlider(value=(0.0, 1.0), min=0.0, max=1.0, step=0.05, description="reward")
    use_score = w.Checkbox(value=False, description="filter by reward")
    picked = w.Select(options=[], rows=8, description="query")
    detail = w.Output()

    def refresh(*_):
        found = filter_cases(
            cases, method.value, principle.value, dimension.value, score.value if use_score.value else None
        )
        picked.options = [(f"{i} ({n} cases)", i) for i, n in found.groupby("id").size().items()]

    def show(*_):
        detail.clear_output()
        if picked.value is None:
            return
        rows = cases[cases["id"] == picked.value]
        with detail:
            display(HTML(f"<b>query</b>: {html.escape(str(rows['query'].iloc[0]))}"))
            for _, row in rows.iterrows():
                reward = "" if pd.isna(row["reward"]) else f", reward {row['reward']:.2f}"
                display(
                    HTML(
                        f"<hr><b>{row['method']}</b> ({row['outcome'] or 'no text verdict'}{reward})"
                        f"<br>{html.escape(str(row['prompt']))}<br><i>{html.escape(str(row['reasons']))}</i>"
                    )
                )
                if isinstance(row["gif"], str) and Path(row["gif"]).exists():
                    display(Image(filename=row["gif"]))
                if isinstance(row["answers"], dict) and row["answers"]:
                    display(HTML(", ".join(f"{q}: {answer_label(ok)}" for q, ok in row["answers"].items())))

    for ctrl in (method, principle, dimension, score, use_score):
        ctrl.observe(refresh, names="value")
    picked.observe(show, names="value")
    refresh()
    box = w.VBox([w.HBox([method, principle, dimension]), w.HBox([use_score, score]), picked, detail])
    display(box)
    return box
