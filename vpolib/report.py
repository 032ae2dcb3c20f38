"""The run report: one self-contained HTML file (tables, figures and GIFs embedded as data URIs)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd

from vpolib.analysis import answer_label

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
.gallery { display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 1.5em; }
.card { border: 1px solid #ddd; padding: 6px; width: 220px; font-size: 0.8em; }
.card img { width: 128px; image-rendering: pixelated; }
.note { color: #555; }
"""


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
    if "lo" in table and "hi" in table:
        triples.append((table.columns[table.columns.get_loc("lo") - 1], "lo", "hi"))
    out = table.copy()
    for col, lo, hi in triples:
        out[col] = [_ci(v, a, b, fmt) for v, a, b in zip(table[col], table[lo], table[hi], strict=True)]
        out = out.drop(columns=[lo, hi])
    return out


def _table(frame: pd.DataFrame) -> str:
    return compact(frame).to_html(index=False, float_format=lambda x: f"{x:.3g}", na_rep="", border=0)


def _card(item: dict) -> str:
    gif = item.get("gif")
    img = ""
    if gif and Path(gif).is_file():
        img = f'<img src="{data_uri(Path(gif).read_bytes(), "image/gif")}" alt="{html.escape(item["method"])}"><br>'
    reward = item.get("reward")
    reward_txt = "" if reward is None else f" reward {reward:.2f}"
    answers = ", ".join(f"{q}: {answer_label(ok)}" for q, ok in (item.get("answers") or {}).items())
    return (f'<div class="card"><b>{html.escape(item["method"])}</b>{reward_txt}<br>{img}'
            f'{html.escape(item.get("prompt") or "")}<br><span class="note">{html.escape(answers)}</span></div>')


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
    lines = [f"| method | % aligned | % unsafe (harmful) | % refusal (harmful) | video reward | {target} win rate "
             "(text / video) |", "|---|---|---|---|---|---|"]
    for m in dict.fromkeys([*text, *video]):
        lines.append(f"| {m} | {ci(text.get(m), 'aligned', '{:.1f}')} | {ci(harmful.get(m), 'unsafe', '{:.1f}')} | "
                     f"{ci(harmful.get(m), 'refusal', '{:.1f}')} | {ci(video.get(m), 'reward', '{:.3f}')} | "
                     f"{win(m, 'text')} / {win(m, 'video')} |")
    return "\n".join(lines)


def render_report(title: str, meta: dict, tables: dict[str, pd.DataFrame], figures: dict, gallery: list[dict],
                  notes: list[str] = ()) -> str:
    """The report's HTML.

    ``tables``: heading -> frame; ``figures``: heading -> matplotlib figure; ``gallery``: one entry per
    query, ``{"id", "query", "items": [{"method", "prompt", "gif", "reward", "answers"}]}``.
    """
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts.append("<table>" + "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                                     for k, v in meta.items()) + "</table>")
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    for heading, frame in tables.items():
        parts.append(f"<h2>{html.escape(heading)}</h2>{_table(frame)}")
    for heading, fig in figures.items():
        parts.append(f'<h2>{html.escape(heading)}</h2><img src="{figure_uri(fig)}" alt="{html.escape(heading)}">')
    if gallery:
        parts.append("<h2>Gallery: the same query through each method</h2>")
        for entry in gallery:
            parts.append(f"<h3>{html.escape(entry['id'])}: {html.escape(entry['query'])}</h3>")
            parts.append('<div class="gallery">' + "".join(_card(i) for i in entry["items"]) + "</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(path: str | Path, *args, **kwargs) -> Path:
    """Render (see :func:`render_report`) and write the report; returns its path."""
    path = Path(path)
    path.write_text(render_report(*args, **kwargs), encoding="utf-8")
    return path
