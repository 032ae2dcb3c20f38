"""The run report: one self-contained HTML file (tables, figures and GIFs embedded as data URIs).

Read top to bottom: the headline (one figure of the main results with their CIs and the findings generated from
the numbers by :mod:`vpolib.results`: what held, what did not, where no difference is shown), then the details
(pivoted tables, the notebook's figures, the gallery, stage timings). Whatever methods and metrics are present are
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
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from vpolib.analysis import answer_label
from vpolib.results import findings, has_ci, is_reference, number, result_rows, with_ci

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


def compact(table: pd.DataFrame, fmt: str = "{:.3g}") -> pd.DataFrame:
    """Merge every ``x``, ``x_lo``, ``x_hi`` into one ``"x [lo, hi]"`` column; a plain ``lo``/``hi``
    pair belongs to the column just before ``lo`` (the long-form tables of :mod:`vpolib.analysis`)."""
    triples = [(c, f"{c}_lo", f"{c}_hi") for c in table.columns if f"{c}_lo" in table and f"{c}_hi" in table]
    if "lo" in table and "hi" in table and table.columns.get_loc("lo") > 0:
        triples.append((table.columns[table.columns.get_loc("lo") - 1], "lo", "hi"))
    out = table.copy()
    for col, lo, hi in triples:
        out[col] = [with_ci(v, a, b, fmt) for v, a, b in zip(table[col], table[lo], table[hi], strict=True)]
        out = out.drop(columns=[lo, hi])
    return out


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
            with_ci(r.win_rate, r.lo, r.hi, "{:.2f}")
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


def headline_figure(results: dict):
    """One figure of the main results with their CIs: video reward, % aligned, % unsafe on harmful
    queries (each per method) and the target's paired win rates. ``None`` when there is nothing to plot."""
    target = str(results.get("target") or "vpo")
    panels = []
    for rows, col, title in (
        (result_rows(results, "video", "overall"), "reward", "video reward (checklist)"),
        (result_rows(results, "text", "all"), "aligned", "% aligned (text)"),
        (result_rows(results, "text", "harmful"), "unsafe", "% unsafe (harmful queries)"),
    ):
        rows = [r for r in rows if has_ci(r, col)]
        if rows:
            panels.append(("method", rows, col, f"{col}_lo", f"{col}_hi", title))
    wins = [
        {**r, "method": f"{r['baseline']} · {kind}"}
        for kind in ("video", "text")
        for r in result_rows(results, kind, "win_rates")
        if all(number(r.get(k)) is not None for k in ("win_rate", "lo", "hi"))
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
                "#b8c2cc" if is_reference(lab) else "#4c72b0" if "video" in lab else "#55a868"
                for lab in labels
            ]
            ax.axvline(0.5, color="k", lw=1, ls="--")
            for y, v, e0, e1, c in zip(ys, vals, err[0], err[1], colours, strict=True):
                ax.errorbar(v, y, xerr=[[e0], [e1]], fmt="o", color=c, capsize=3, ms=5)
            ax.set_xlim(-0.02, 1.02)
        else:
            colours = [
                "#dd8452" if lab == target else "#b8c2cc" if is_reference(lab) else "#4c72b0"
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
    fig = headline_figure(results)
    img = ""
    if fig is not None:
        img = f'<img src="{figure_uri(fig)}" alt="main results with 95% CIs">'
        plt.close(fig)
    summary = findings(results)
    return (
        f'<section class="headline"><h2>At a glance</h2>{_findings_html(summary, img)}'
        '<p class="note">Verdicts are generated from the numbers below: "held" means the target method is '
        'better with the CI excluding no difference, "did not hold" that it is worse.</p></section>'
    )


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
    reward, shown = number(item.get("reward")), number(item.get("video_reward"))
    reward_txt = "" if reward is None else f" reward {reward:.2f}"
    if shown is not None and reward is not None and abs(shown - reward) > 1e-9:  # a mean over several seeds
        reward_txt += f" (mean over seeds; this video {shown:.2f})"
    answers = ", ".join(f"{q}: {answer_label(ok)}" for q, ok in (item.get("answers") or {}).items())
    return (
        f'<div class="card"><b>{html.escape(method)}</b>{reward_txt}<br>{img}'
        f'{html.escape(item.get("prompt") or "")}<br><span class="note">{html.escape(answers)}</span></div>'
    )


def render_report(
    title: str,
    meta: dict,
    tables: dict[str, pd.DataFrame],
    figures: dict,
    gallery: list[dict] | None,
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
    elif gallery is not None:  # None: a report without a gallery section (notebook 07's)
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
