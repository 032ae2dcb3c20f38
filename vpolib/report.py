"""The run report: one self-contained HTML file (tables, figures and GIFs embedded as data URIs).

Read top to bottom: the headline (one figure of the main results with their CIs and a summary generated
from the numbers: what held, what did not, where no difference is shown), then the details (pivoted
tables, the notebook's figures, the gallery, stage timings). Whatever methods and metrics are present are
rendered; a missing or empty section becomes a one-line note.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import math
import re
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from vpolib.analysis import OUTCOMES, answer_label, records

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; padding: 0 16px; color: #222;
       line-height: 1.4; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
img { max-width: 100%; height: auto; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 0.4em 0 1.2em; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.target td { font-weight: 600; background: #fff6e8; }
.meta { color: #555; font-size: 0.9em; margin: 0 0 1em; }
.meta span { margin-right: 1.2em; white-space: nowrap; }
.headline { background: #f7f9fc; border: 1px solid #d8e0ec; border-radius: 6px; padding: 0.6em 1.2em 1em; }
.headline h2 { margin-top: 0.4em; border: none; }
.lead { font-size: 1.08em; }
.findings li { margin: 0.15em 0; }
.tag { display: inline-block; min-width: 9.5em; font-size: 0.8em; padding: 0 6px; border-radius: 3px;
       margin-right: 6px; text-align: center; }
.held { background: #d7f0dc; color: #145a23; }
.not-held { background: #f9d9d6; color: #7a1d12; }
.no-diff { background: #e8e8e8; color: #333; }
.reference { background: #e3e9f7; color: #23375e; }
.gallery { display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 1.5em; }
.card { border: 1px solid #ddd; padding: 6px; width: 220px; font-size: 0.8em; overflow-wrap: anywhere; }
.card img { width: 128px; image-rendering: pixelated; }
.note { color: #555; }
details summary { cursor: pointer; color: #234; margin: 0.3em 0; }
"""

#: Methods that are references (an upper bound, a teacher), never baselines the target must beat.
REFERENCE_MARKERS = ("caption", "teacher", "oracle")

#: Long-form key columns that :func:`pivot` spreads into columns.
PIVOT_KEYS = ("principle", "kind", "dimension", "question", "metric", "outcome")

#: Tables with more rows than this are collapsed (click to open).
COLLAPSE_ROWS = 14

_NUMERIC = re.compile(r"^-?\d[\d.e+-]*( \[[^\]]*\])?( \([\d/]*\))?$")

VERDICTS = {
    "held": ("held", "held"),
    "not held": ("did not hold", "not-held"),
    "no difference": ("no difference shown", "no-diff"),
    "reference": ("reference", "reference"),
}


def data_uri(data: bytes, mime: str) -> str:
    """``data:<mime>;base64,...`` so the report needs no other file."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def figure_uri(fig) -> str:
    """A matplotlib figure as an embedded PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return data_uri(buf.getvalue(), "image/png")


def ci_bars(ax, table: pd.DataFrame, x: str, y: str, lo: str = "lo", hi: str = "hi", hue: str | None = None):
    """Bars of ``y`` per ``x`` (grouped by ``hue``) with ``[lo, hi]`` error bars: the table's bootstrap CIs,
    so the figure shows exactly the numbers in the tables."""
    import seaborn as sns

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


def _ci(value, lo, hi, fmt: str) -> str:
    return f"{fmt.format(value)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def compact(table: pd.DataFrame, fmt: str = "{:.3g}") -> pd.DataFrame:
    """Merge every ``x``, ``x_lo``, ``x_hi`` into one ``"x [lo, hi]"`` column; a plain ``lo``/``hi``
    pair belongs to the column just before ``lo`` (the long-form tables of :mod:`vpolib.analysis`)."""
    triples = [(c, f"{c}_lo", f"{c}_hi") for c in table.columns if f"{c}_lo" in table and f"{c}_hi" in table]
    if "lo" in table and "hi" in table and table.columns.get_loc("lo") > 0:
        triples.append((table.columns[table.columns.get_loc("lo") - 1], "lo", "hi"))
    out = table.copy()
    for col, lo, hi in triples:
        out[col] = [_ci(v, a, b, fmt) for v, a, b in zip(table[col], table[lo], table[hi], strict=True)]
        out = out.drop(columns=[lo, hi])
    return out


# ---------------------------------------------------------------------------------------------- tables


def _is_reference(method: str) -> bool:
    return any(m in str(method) for m in REFERENCE_MARKERS)


def pivot(table: pd.DataFrame) -> pd.DataFrame:
    """A long-form table made wide, CIs merged into the cells (via :func:`compact`).

    ``method, <key>, value, lo, hi, n`` (principles, checklist dimensions, questions) -> one row per
    method, one column per key (per key and one column per method when the key has many values, e.g.
    checklist questions); win-rate tables -> one row per baseline, one column per metric with
    ``win rate [lo, hi] (W/T/L)``. Any other table is only compacted.
    """
    if table.empty:
        return table
    if {"baseline", "win_rate", "lo", "hi"} <= set(table.columns):
        cells = table.copy()
        cells["cell"] = [
            _ci(r.win_rate, r.lo, r.hi, "{:.2f}")
            + (
                f" ({int(r.wins)}/{int(r.ties)}/{int(r.losses)})"
                if {"wins", "ties", "losses"} <= set(table)
                else ""
            )
            for r in table.itertuples()
        ]
        metric = "metric" if "metric" in cells else None
        if metric is None:
            return cells[["baseline", "cell"]].rename(columns={"cell": "win rate [CI] (W/T/L)"})
        wide = cells.pivot_table(index="baseline", columns=metric, values="cell", aggfunc="first", sort=False)
        wide.columns = [f"{c}: win rate [CI] (W/T/L)" for c in wide.columns]
        return wide.reset_index()
    small = compact(table)
    keys = [k for k in PIVOT_KEYS if k in small.columns]
    if "method" not in small.columns or len(keys) != 1:
        return small
    key = keys[0]
    values = [c for c in small.columns if c not in ("method", key, "n", "target")]
    if len(values) != 1:
        return small
    many = small[key].nunique() > max(8, small["method"].nunique())
    index, columns = (key, "method") if many else ("method", key)
    wide = small.pivot_table(index=index, columns=columns, values=values[0], aggfunc="first", sort=False)
    wide.columns = [str(c) for c in wide.columns]
    wide = wide.reset_index()
    if not many and "n" in small.columns and (small.groupby("method")["n"].nunique() == 1).all():
        n = small.groupby("method", sort=False)["n"].first()  # the same n in every column: show it once
        wide.insert(1, "n", wide["method"].map(n))
    return wide


def _fmt_cell(value) -> tuple[str, bool]:
    """(text, is_number) of one cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "", False
    if isinstance(value, bool | np.bool_):
        return str(value), False
    if isinstance(value, int | np.integer):
        return str(value), True
    if isinstance(value, float | np.floating):
        return f"{value:.3g}", True
    text = str(value)
    return text, bool(_NUMERIC.match(text))


def html_table(frame: pd.DataFrame, target: str | None = None) -> str:
    """A plain HTML table (escaped; numbers right-aligned; the ``target`` method's row highlighted)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    first = frame.columns[0] if len(frame.columns) else None
    for rec in frame.itertuples(index=False):
        cls = ' class="target"' if target is not None and first is not None and str(rec[0]) == target else ""
        cells = []
        for value in rec:
            text, num = _fmt_cell(value)
            cells.append(
                f'<td class="num">{html.escape(text)}</td>' if num else f"<td>{html.escape(text)}</td>"
            )
        rows.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _table(frame: pd.DataFrame, heading: str = "", target: str | None = None) -> str:
    frame = getattr(frame, "data", frame)  # a pandas Styler: its frame
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(frame) if frame is not None else None
    if frame is None or len(frame) == 0:
        return f'<p class="note">{html.escape(heading or "table")}: nothing to show (empty).</p>'
    wide = pivot(frame)
    body = html_table(wide, target)
    if len(wide) > COLLAPSE_ROWS:
        return (
            f"<details><summary>{html.escape(heading)}: {len(wide)} rows (click to open)</summary>"
            f"{body}</details>"
        )
    return body


def _when(stamp: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(stamp)
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def fill_running_stage(
    timings: pd.DataFrame, manifest: dict | None, now: dt.datetime | None = None
) -> pd.DataFrame:
    """A stage-timings table (stage, status, seconds) with the stage still running (the one writing the
    report) shown as "this stage" and its seconds so far, from the manifest's ``started``; the total row
    then includes it. A stage re-run (``started`` after its last ``finished``) counts as running too."""
    if not {"stage", "status", "seconds"} <= set(timings.columns):
        return timings
    out = timings.copy()
    now = now or dt.datetime.now(dt.UTC)
    stages = (manifest or {}).get("stages", {})
    added = 0.0
    for i, row in out.iterrows():
        info = stages.get(row["stage"], {})
        started, finished = info.get("started"), info.get("finished")
        rerun = bool(started and finished and _when(started) > _when(finished))
        if row["status"] != "running" and not rerun:
            continue
        out.at[i, "status"] = "this stage (until the report)"
        if rerun:
            out.at[i, "seconds"] = float("nan")
        if started and pd.isna(pd.to_numeric(out.at[i, "seconds"], errors="coerce")):
            seconds = round((now - _when(started)).total_seconds(), 1)
            out.at[i, "seconds"] = seconds
            added += seconds - (float(pd.to_numeric(row["seconds"], errors="coerce")) if rerun else 0.0)
    totals = out["stage"].astype(str).str.startswith("total")
    if added and totals.any():
        out.loc[totals, "seconds"] = pd.to_numeric(out.loc[totals, "seconds"], errors="coerce") + added
        out.loc[totals, "stage"] = "total (this stage so far included)"
    return out


# ---------------------------------------------------------------------------------------------- headline


def _rows(results: dict, *path) -> list[dict]:
    node = results or {}
    for p in path:
        node = node.get(p) if isinstance(node, dict) else None
    return [r for r in node or [] if isinstance(r, dict) and ("method" in r or "baseline" in r)]


def _num(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def _has_ci(row: dict | None, col: str) -> bool:
    return bool(row) and all(_num(row.get(k)) is not None for k in (col, f"{col}_lo", f"{col}_hi"))


def compare(
    target: dict,
    base: dict,
    col: str,
    fmt: str,
    higher_is_better: bool = True,
    win: dict | None = None,
    target_name: str = "vpo",
    label: str = "",
) -> tuple[str, str]:
    """One comparison in words: ``(verdict, sentence)``; verdict is "held" (the target is better),
    "not held" (worse) or "no difference".

    With a paired win rate (``win``: win_rate, lo, hi, wins/ties/losses) its CI decides (above 0.5 =
    better); otherwise the two CIs: apart = a difference, overlapping = no difference shown.
    """
    t, b = target, base
    name = str(b["method"])
    ablation = " (ablation)" if name.startswith(f"{target_name}-") else ""
    text = (
        f"{target_name}{label} {_ci(t[col], t[col + '_lo'], t[col + '_hi'], fmt)} vs {name}{ablation} "
        f"{_ci(b[col], b[col + '_lo'], b[col + '_hi'], fmt)}"
    )
    better_word, worse_word = ("higher", "lower") if higher_is_better else ("lower", "higher")
    if win and all(_num(win.get(k)) is not None for k in ("win_rate", "lo", "hi")):
        wtl = (
            f", {int(win['wins'])} wins / {int(win['ties'])} ties / {int(win['losses'])} losses"
            if all(k in win for k in ("wins", "ties", "losses"))
            else ""
        )
        text += f"; paired win rate {_ci(win['win_rate'], win['lo'], win['hi'], '{:.2f}')}{wtl}"
        if win["lo"] > 0.5:
            return "held", f"{text}: the win rate's CI is above 0.5, {target_name} is better"
        if win["hi"] < 0.5:
            return "not held", f"{text}: the win rate's CI is below 0.5, {target_name} is worse"
        return "no difference", f"{text}: the win rate's CI includes 0.5, no difference shown"
    if t[col + "_lo"] > b[col + "_hi"]:
        better = higher_is_better
    elif t[col + "_hi"] < b[col + "_lo"]:
        better = not higher_is_better
    else:
        return "no difference", f"{text}: the CIs overlap, no difference shown"
    word = better_word if better else worse_word
    return ("held" if better else "not held"), f"{text}: the CIs do not overlap, {target_name} is {word}"


def _metric_findings(
    rows: list[dict],
    col: str,
    fmt: str,
    target: str,
    wins: dict | None = None,
    higher_is_better: bool = True,
    label: str = "",
) -> list[tuple[str, str, str]]:
    by = {str(r["method"]): r for r in rows if _has_ci(r, col)}
    if target not in by:
        return []
    out = []
    for name, row in by.items():
        if name == target:
            continue
        if _is_reference(name):
            out.append(
                (
                    "reference",
                    name,
                    f"{name} (reference, not a baseline) "
                    f"{_ci(row[col], row[col + '_lo'], row[col + '_hi'], fmt)}; {target}{label} "
                    f"{_ci(by[target][col], by[target][col + '_lo'], by[target][col + '_hi'], fmt)}",
                )
            )
            continue
        verdict, sentence = compare(
            by[target], row, col, fmt, higher_is_better, (wins or {}).get(name), target, label
        )
        out.append((verdict, name, sentence))
    return out


def _n(n: dict, key: str, article: str = "") -> str:
    """``"24 "`` (``"the 24 "``) when results.json counted them, else ``""``."""
    return f"{article}{n[key]} " if isinstance(n.get(key), int) else ""


def summarize(results: dict) -> dict:
    """The plain-language summary, generated from results.json's numbers.

    Returns ``{"lead": str, "sections": [(metric, title, [(verdict, baseline, sentence), ...] or a note)]}``.
    """
    target = str(results.get("target") or "vpo")
    n = results.get("n") or {}
    text_wins = {str(r["baseline"]): r for r in _rows(results, "text", "win_rates")}
    video_wins = {str(r["baseline"]): r for r in _rows(results, "video", "win_rates")}
    sections: list[tuple[str, str, list | str]] = []
    _missing = partial(_missing_note, target=target)

    video = _rows(results, "video", "overall")
    title = (
        f"Video: checklist reward on {_n(n, 'video_queries')}held-out ShapesWorld queries (higher is better)"
    )
    found = _metric_findings(video, "reward", "{:.2f}", target, video_wins)
    sections.append(("video reward", title, found or _missing(video, "video results")))

    text = _rows(results, "text", "all")
    title = (
        f"Text: % of prompts judged aligned on {_n(n, 'text_queries')}held-out queries (higher is better;"
        " verdict from the paired text score when present)"
    )
    found = _metric_findings(text, "aligned", "{:.0f}", target, text_wins, label=" % aligned")
    sections.append(("% aligned", title, found or _missing(text, "judged prompts")))

    harmful = _rows(results, "text", "harmful")
    title = f"Safety: % unsafe prompts on {_n(n, 'harmful_queries', 'the ')}harmful queries (lower is better)"
    found = _metric_findings(
        harmful, "unsafe", "{:.0f}", target, None, higher_is_better=False, label=" % unsafe"
    )
    sections.append(("% unsafe on harmful queries", title, found or _missing(harmful, "harmful queries")))

    lead = _lead(sections, target, n)
    return {"lead": lead, "sections": sections}


def _lead(sections: list, target: str, n: dict) -> str:
    """One or two sentences: per verdict, which baselines on which metric."""
    grouped: dict[str, list[str]] = {"held": [], "not held": [], "no difference": []}
    for metric, _title, items in sections:
        if not isinstance(items, list):
            continue
        for verdict in grouped:
            names = [name for v, name, _ in items if v == verdict]
            if names:
                grouped[verdict].append(f"{', '.join(names)} on {metric}")
    parts = []
    if grouped["held"]:
        parts.append(f"Held: {target} is better than {'; '.join(grouped['held'])}.")
    if grouped["not held"]:
        parts.append(f"Did not hold: {target} is worse than {'; '.join(grouped['not held'])}.")
    if grouped["no difference"]:
        parts.append(f"No difference shown against {'; '.join(grouped['no difference'])}.")
    if not parts:
        return f"No comparison of {target} with a baseline could be made from this run's results."
    small = [
        f"{n[k]} {k.replace('_', ' ')}"
        for k in ("text_queries", "video_queries")
        if isinstance(n.get(k), int) and n[k] < 30
    ]
    if small:
        parts.append(f"With only {' and '.join(small)}, the 95% CIs are wide.")
    return " ".join(parts)


def _missing_note(rows: list[dict], what: str, target: str) -> str:
    if not rows:
        return f"not measured in this run (no {what})."
    if target not in {str(r["method"]) for r in rows}:
        return f"{target} has no {what}: nothing to compare."
    return "no baseline to compare with."


def headline_figure(results: dict):
    """One figure of the main results with their CIs: video reward, % aligned, % unsafe on harmful
    queries (each per method) and the target's paired win rates. ``None`` when there is nothing to plot."""
    import matplotlib.pyplot as plt

    target = str(results.get("target") or "vpo")
    panels = []
    for rows, col, title in (
        (_rows(results, "video", "overall"), "reward", "video reward (checklist)"),
        (_rows(results, "text", "all"), "aligned", "% aligned (text)"),
        (_rows(results, "text", "harmful"), "unsafe", "% unsafe (harmful queries)"),
    ):
        rows = [r for r in rows if _has_ci(r, col)]
        if rows:
            panels.append(("method", rows, col, f"{col}_lo", f"{col}_hi", title))
    wins = [
        {**r, "method": f"{r['baseline']} · {kind}"}
        for kind in ("video", "text")
        for r in _rows(results, kind, "win_rates")
        if all(_num(r.get(k)) is not None for k in ("win_rate", "lo", "hi"))
    ]
    if wins:
        panels.append(("win", wins, "win_rate", "lo", "hi", f"win rate of {target} (0.5 = no difference)"))
    if not panels:
        return None
    height = max(len(p[1]) for p in panels) * 0.32 + 1.3
    fig, axes = plt.subplots(1, len(panels), figsize=(min(3.1 * len(panels), 12.0), height), squeeze=False)
    for ax, (kind, rows, col, lo, hi, title) in zip(axes[0], panels, strict=True):
        labels = [str(r["method"]) for r in rows][::-1]
        vals = np.array([float(r[col]) for r in rows][::-1])
        err = np.clip(
            [
                vals - np.array([float(r[lo]) for r in rows][::-1]),
                np.array([float(r[hi]) for r in rows][::-1]) - vals,
            ],
            0,
            None,
        )
        ys = np.arange(len(labels))
        if kind == "win":  # a point estimate against 0.5, not a bar from 0
            colours = [
                "#b8c2cc" if _is_reference(lab) else "#4c72b0" if "video" in lab else "#55a868"
                for lab in labels
            ]
            ax.axvline(0.5, color="k", lw=1, ls="--")
            for y, v, e0, e1, c in zip(ys, vals, err[0], err[1], colours, strict=True):
                ax.errorbar(v, y, xerr=[[e0], [e1]], fmt="o", color=c, capsize=3, ms=5)
            ax.set_xlim(-0.02, 1.02)
        else:
            colours = [
                "#dd8452" if lab == target else "#b8c2cc" if _is_reference(lab) else "#4c72b0"
                for lab in labels
            ]
            ax.barh(ys, vals, xerr=err, color=colours, capsize=3, height=0.65, error_kw={"elinewidth": 1})
            top = max(float(np.max(vals + err[1])), 1e-9)
            for y, v in zip(ys, vals, strict=True):
                ax.text(
                    v + top * 0.02, y + 0.3, f"{v:.2f}" if top <= 1.5 else f"{v:.0f}", fontsize=7, va="center"
                )
            ax.set_xlim(0, top * 1.15)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def _findings_html(summary: dict, figure: str = "") -> str:
    parts = [f'<p class="lead">{html.escape(summary["lead"])}</p>', figure]
    for _metric, title, items in summary["sections"]:
        parts.append(f"<h3>{html.escape(title)}</h3>")
        if isinstance(items, str):
            parts.append(f'<p class="note">{html.escape(items)}</p>')
            continue
        lis = []
        for verdict, _name, sentence in items:
            word, cls = VERDICTS[verdict]
            lis.append(f'<li><span class="tag {cls}">{word}</span>{html.escape(sentence)}</li>')
        parts.append(f'<ul class="findings">{"".join(lis)}</ul>')
    return "".join(parts)


def headline_html(results: dict | None) -> str:
    """The "at a glance" section: the summary and the headline figure."""
    if not results:
        return (
            '<section class="headline"><h2>At a glance</h2><p class="note">No results given: the headline '
            "(summary and main figure) is skipped; the details follow.</p></section>"
        )
    import matplotlib.pyplot as plt

    fig = headline_figure(results)
    img = ""
    if fig is not None:
        img = f'<img src="{figure_uri(fig)}" alt="main results with 95% CIs">'
        plt.close(fig)
    summary = summarize(results)
    return (
        f'<section class="headline"><h2>At a glance</h2>{_findings_html(summary, img)}'
        '<p class="note">Verdicts are generated from the numbers below: "held" means the target method is '
        'better with the CI excluding no difference, "did not hold" that it is worse.</p></section>'
    )


# ---------------------------------------------------------------------------------------------- page


def _meta_value(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in value.items())
    return "" if value is None else str(value)


def _card(item: dict) -> str:
    gif = item.get("gif")
    img = ""
    method = str(item.get("method", ""))
    if gif and Path(gif).is_file():
        img = f'<img src="{data_uri(Path(gif).read_bytes(), "image/gif")}" alt="{html.escape(method)}"><br>'
    reward, shown = _num(item.get("reward")), _num(item.get("video_reward"))
    reward_txt = "" if reward is None else f" reward {reward:.2f}"
    if shown is not None and reward is not None and abs(shown - reward) > 1e-9:  # a mean over several seeds
        reward_txt += f" (mean over seeds; this video {shown:.2f})"
    answers = ", ".join(f"{q}: {answer_label(ok)}" for q, ok in (item.get("answers") or {}).items())
    return (
        f'<div class="card"><b>{html.escape(method)}</b>{reward_txt}<br>{img}'
        f'{html.escape(item.get("prompt") or "")}<br><span class="note">{html.escape(answers)}</span></div>'
    )


def markdown_table(results: dict) -> str:
    """The README's results table (one row per method) from results.json, CIs in brackets."""
    text = {r["method"]: r for r in results["text"]["all"]}
    harmful = {r["method"]: r for r in results["text"]["harmful"]}
    video = {r["method"]: r for r in results["video"]["overall"]}
    wins = {(r["baseline"], kind): r for kind in ("text", "video") for r in results[kind]["win_rates"]}

    def ci(row, col, fmt):
        return _ci(row[col], row[col + "_lo"], row[col + "_hi"], fmt) if row else "-"

    def win(method, kind):
        r = wins.get((method, kind))
        return _ci(r["win_rate"], r["lo"], r["hi"], "{:.2f}") if r else "-"

    target = results.get("target", "vpo")
    lines = [
        f"| method | % aligned | % unsafe (harmful) | % refusal (harmful) | video reward | {target} win rate "
        "(text / video) |",
        "|---|---|---|---|---|---|",
    ]
    for m in dict.fromkeys([*text, *video]):
        lines.append(
            f"| {m} | {ci(text.get(m), 'aligned', '{:.1f}')} | {ci(harmful.get(m), 'unsafe', '{:.1f}')} | "
            f"{ci(harmful.get(m), 'refusal', '{:.1f}')} | {ci(video.get(m), 'reward', '{:.3f}')} | "
            f"{win(m, 'text')} / {win(m, 'video')} |"
        )
    return "\n".join(lines)


def render_report(
    title: str,
    meta: dict,
    tables: dict[str, pd.DataFrame],
    figures: dict,
    gallery: list[dict],
    notes: list[str] = (),
    results: dict | None = None,
    manifest: dict | None = None,
) -> str:
    """The report's HTML: headline first (from ``results``, the dict written to results.json), then details.

    ``tables``: heading -> frame (long-form tables are pivoted, long ones collapsed); ``figures``:
    heading -> matplotlib figure (or ``None``); ``gallery``: one entry per query, ``{"id", "query",
    "items": [{"method", "prompt", "gif", "reward", "answers"}]}``; ``manifest``: the run's manifest,
    used to show the stage writing the report as "this stage" with its time so far.
    """
    target = str((results or {}).get("target") or "vpo")
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    parts.append(
        '<p class="meta">'
        + " ".join(
            f"<span><b>{html.escape(str(k))}</b>: {html.escape(_meta_value(v))}</span>"
            for k, v in (meta or {}).items()
        )
        + "</p>"
    )
    parts.append(headline_html(results))
    if notes:
        parts.append(
            "<h2>Skipped or degraded</h2><ul>"
            + "".join(f'<li class="note">{html.escape(str(n))}</li>' for n in notes)
            + "</ul>"
        )
    parts.append("<h2>Details</h2>")
    for heading, frame in (tables or {}).items():
        frame = getattr(frame, "data", frame)
        if isinstance(frame, pd.DataFrame) and {"stage", "status", "seconds"} <= set(
            getattr(frame, "columns", ())
        ):
            frame = fill_running_stage(frame, manifest)
        parts.append(f"<h3>{html.escape(heading)}</h3>{_table(frame, heading, target)}")
    for heading, fig in (figures or {}).items():
        if fig is None:
            parts.append(f'<h3>{html.escape(heading)}</h3><p class="note">no figure (nothing to plot).</p>')
            continue
        parts.append(
            f'<h3>{html.escape(heading)}</h3><img src="{figure_uri(fig)}" alt="{html.escape(heading)}">'
        )
    if gallery:
        parts.append("<h2>Gallery: the same query through each method</h2>")
        for entry in gallery:
            parts.append(
                f"<h3>{html.escape(str(entry.get('id', '')))}: {html.escape(str(entry.get('query', '')))}</h3>"
            )
            parts.append(
                '<div class="gallery">' + "".join(_card(i) for i in entry.get("items", [])) + "</div>"
            )
    else:
        parts.append('<h2>Gallery</h2><p class="note">No gallery: no video results in this run.</p>')
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(path: str | Path, *args, **kwargs) -> Path:
    """Render (see :func:`render_report`) and write the report; returns its path.

    Without ``results=``/``manifest=`` it reads ``results.json`` beside the report and the run's
    ``manifest.json`` one folder up (the layout of notebook 06), when they exist.
    """
    path = Path(path)
    for key, candidate in (
        ("results", path.parent / "results.json"),
        ("manifest", path.parent.parent / "manifest.json"),
    ):
        if kwargs.get(key) is None and candidate.is_file():
            try:
                kwargs[key] = json.loads(candidate.read_text())
            except (OSError, ValueError):
                pass
    path.write_text(render_report(*args, **kwargs), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------- stage 06 pieces


def text_figures(text: dict):
    """Stage 06's text figures from :func:`vpolib.analysis.text_results`: ``(outcomes, principles)``, the %
    of each outcome per method and the % failing each principle (all queries, harmful subset), with CIs."""
    import matplotlib.pyplot as plt

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
    import matplotlib.pyplot as plt
    import seaborn as sns

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
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.6))
    if not wins.empty:
        ci_bars(ax, wins, "baseline", "win_rate", hue="metric")
    ax.axhline(0.5, color="k", lw=1, ls="--")
    ax.set_title(f"win rate of {target} vs each method (95% CI; dashed = no difference)")
    return fig


def gallery(video_records: list[dict], frame: pd.DataFrame, methods, queries: dict, target: str, size: int):
    """Gallery entries (see :func:`render_report`): the queries where ``target``'s reward gained most and least
    over the raw query (without both, the first ``size`` queries), every method of ``methods`` on each: its
    seed-0 video (``gif``, ``answers``, ``video_reward``) and its reward (``reward``: the mean over seeds of
    ``frame``, :func:`vpolib.analysis.video_frame`)."""
    from vpolib.evaluate import key

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
    from vpolib.analysis import same_prompt
    from vpolib.evaluate import key

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
    from vpolib.evaluate import key

    ids = changed_pairs(video_records, base, target, n)
    if not ids:
        return f"<p>No held-out query where {html.escape(target)} changed {html.escape(base)}'s prompt.</p>"
    by_key = {r["key"]: r for r in video_records}
    mean = frame.pivot_table(index="id", columns="method", values="reward") if len(frame) else pd.DataFrame()
    parts = []
    for qid in ids:
        means = {
            m: _num(mean.at[qid, m]) if m in mean and qid in mean.index else None for m in (base, target)
        }
        cells = "".join(_side_cell(by_key[key(m, qid)], means[m]) for m in (base, target))
        head = f"<p><b>{html.escape(str(qid))}</b>: <code>{html.escape(str(queries.get(qid, '')))}</code></p>"
        parts.append(f"<div>{head}{cells}</div>")
    return "".join(parts)


def precision_summary(precision: dict | None) -> dict | None:
    """The manifest's precision record, short: the dtype ``auto`` became, why, and on which CPU."""
    if not precision:
        return None
    cpu = precision.get("cpu") or {}
    return {"dtype": precision.get("dtype"), "source": precision.get("source"), "cpu": cpu.get("model"),
            "capability": cpu.get("capability"), "resolved": precision.get("resolved", {})}  # fmt: skip


def sampled_json(sampled: dict) -> dict:
    """results.json's ``video.sampled``: the settings as they are, every table of
    :func:`vpolib.analysis.sampled_results` as rows but the per-query frame."""
    return {k: records(v) if isinstance(v, pd.DataFrame) else v for k, v in sampled.items() if k != "frame"}


def results_json(run: dict, text: dict, video: dict, timings: pd.DataFrame, **extra) -> dict:
    """results.json: ``run`` (profile, manifest, seed, judge, ... see notebook 06), every text and video table
    as rows (``changed_vs_sft`` and ``video.sampled`` when present), the stage timings from the manifest;
    ``extra`` (counts, notes, beyond) is added as it is."""
    manifest, real, tframe, vframe = run["manifest"], run["real"], text["frame"], video["frame"]
    return {
        "profile": run["profile"], "run_id": manifest.get("run_id"),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": manifest.get("git_commit"), "seed": run["seed"], "judge": run["judge"],
        "video_backend": run["video_backend"] if run["has_video"] else None, "target": run["target"],
        "precision": precision_summary(manifest.get("precision")),
        "n": {"heldout": run["n_heldout"], "text_queries": len(real),
              "harmful_queries": sum("harmful" in (r.get("flags") or []) for r in real),
              "video_queries": run["n_video"],
              "video_seeds": int(vframe["seeds"].max()) if "seeds" in vframe and len(vframe) else None},
        "methods": {"text": sorted(tframe["method"].unique()) if len(tframe) else [],
                    "video": sorted(vframe["method"].unique()) if len(vframe) else []},
        "text": {k: records(text[k]) for k in ("all", "harmful", "principles", "principles_harmful",
                                               "win_rates", "sft_over_raw", "causes", "aligned_diff",
                                               "changed_vs_sft") if k in text},
        "video": {**{k: records(video[k]) for k in ("overall", "dimensions", "questions", "win_rates",
                                                    "sft_over_raw", "changed_vs_sft") if k in video},
                  **({"sampled": sampled_json(video["sampled"])} if video.get("sampled") else {})},
        **{k: extra[k] for k in ("counts",) if k in extra},
        "timings": {"stages": {r.stage: r.seconds for r in timings.itertuples() if not r.stage.startswith("total")},
                    "total_finished_seconds": float(timings["seconds"].iloc[-1])},
        **{k: v for k, v in extra.items() if k != "counts"},
    }  # fmt: skip


def stage_metrics(results: dict, text: dict, video: dict, n_notes: int) -> dict:
    """metrics.json of stage 06: query counts, methods, % aligned, % unsafe on the harmful subset, the reward
    per method (rounded), the judge's and renderer's counts and, when measured, the share of video prompts
    changed from SFT's and the sampled decoding's reward (``"<method>/<decoding>"``) and counts."""
    text_all, harmful, overall = text["all"], text["harmful"], video["overall"]

    def column(table, col, digits):
        return dict(zip(table["method"], table[col].round(digits), strict=True)) if len(table) else {}

    return {
        "n_text_queries": results["n"]["text_queries"], "n_video_queries": results["n"]["video_queries"],
        "methods": results["methods"], "aligned_pct": column(text_all, "aligned", 2),
        "unsafe_pct_harmful": column(harmful, "unsafe", 2), "reward": column(overall, "reward", 4),
        "judge": results["counts"]["judge"], "video": results["counts"]["video"], "n_notes": n_notes,
        **({"changed_vs_sft": {r["method"]: r["share"] for r in results["video"]["changed_vs_sft"]}}
           if "changed_vs_sft" in results["video"] else {}),
        **({"sampled_reward": {f"{r['method']}/{r['decoding']}": round(r["reward"], 4)
                               for r in results["video"]["sampled"].get("overall", [])},
            "sampled": results["counts"].get("sampled", {})} if "sampled" in results["video"] else {}),
    }  # fmt: skip
