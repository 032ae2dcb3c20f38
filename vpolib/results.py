"""results.json: every number of the evaluation (stage 06) in one file, its findings in words, and the README's table.

A finding compares the target method with one baseline on one metric, from the numbers alone: "held" (better, the
CI excluding no difference), "not held" (worse) or "no difference" (the paired win rate's CI, else the two CIs, decide).
The HTML report (:mod:`vpolib.views.report`) and the README (scripts/results_table.py) show what this module computes.
"""

from __future__ import annotations

import datetime as dt
import math
from functools import partial

import pandas as pd

from vpolib.analysis import records
from vpolib.data import is_harmful

#: Methods that are references (an upper bound, a teacher), never baselines the target must beat.
REFERENCE_MARKERS = ("caption", "teacher", "oracle")


def with_ci(value, lo, hi, fmt: str) -> str:
    return f"{fmt.format(value)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def is_reference(method: str) -> bool:
    return any(m in str(method) for m in REFERENCE_MARKERS)


def result_rows(results: dict, *path) -> list[dict]:
    node = results or {}
    for p in path:
        node = node.get(p) if isinstance(node, dict) else None
    return [r for r in node or [] if isinstance(r, dict) and ("method" in r or "baseline" in r)]


def number(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def has_ci(row: dict | None, col: str) -> bool:
    return bool(row) and all(number(row.get(k)) is not None for k in (col, f"{col}_lo", f"{col}_hi"))


def finding(
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
        f"{target_name}{label} {with_ci(t[col], t[col + '_lo'], t[col + '_hi'], fmt)} vs {name}{ablation} "
        f"{with_ci(b[col], b[col + '_lo'], b[col + '_hi'], fmt)}"
    )
    better_word, worse_word = ("higher", "lower") if higher_is_better else ("lower", "higher")
    if win and all(number(win.get(k)) is not None for k in ("win_rate", "lo", "hi")):
        wtl = (
            f", {int(win['wins'])} wins / {int(win['ties'])} ties / {int(win['losses'])} losses"
            if all(k in win for k in ("wins", "ties", "losses"))
            else ""
        )
        text += f"; paired win rate {with_ci(win['win_rate'], win['lo'], win['hi'], '{:.2f}')}{wtl}"
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
    by = {str(r["method"]): r for r in rows if has_ci(r, col)}
    if target not in by:
        return []
    out = []
    for name, row in by.items():
        if name == target:
            continue
        if is_reference(name):
            out.append(
                (
                    "reference",
                    name,
                    f"{name} (reference, not a baseline) "
                    f"{with_ci(row[col], row[col + '_lo'], row[col + '_hi'], fmt)}; {target}{label} "
                    f"{with_ci(by[target][col], by[target][col + '_lo'], by[target][col + '_hi'], fmt)}",
                )
            )
            continue
        verdict, sentence = finding(
            by[target], row, col, fmt, higher_is_better, (wins or {}).get(name), target, label
        )
        out.append((verdict, name, sentence))
    return out


def _n(n: dict, key: str, article: str = "") -> str:
    """``"24 "`` (``"the 24 "``) when results.json counted them, else ``""``."""
    return f"{article}{n[key]} " if isinstance(n.get(key), int) else ""


def findings(results: dict) -> dict:
    """The plain-language summary, generated from results.json's numbers.

    Returns ``{"lead": str, "sections": [(metric, title, [(verdict, baseline, sentence), ...] or a note)]}``.
    """
    target = str(results.get("target") or "vpo")
    n = results.get("n") or {}
    text_wins = {str(r["baseline"]): r for r in result_rows(results, "text", "win_rates")}
    video_wins = {str(r["baseline"]): r for r in result_rows(results, "video", "win_rates")}
    sections: list[tuple[str, str, list | str]] = []
    _missing = partial(_missing_note, target=target)

    video = result_rows(results, "video", "overall")
    title = (
        f"Video: checklist reward on {_n(n, 'video_queries')}held-out ShapesWorld queries (higher is better)"
    )
    found = _metric_findings(video, "reward", "{:.2f}", target, video_wins)
    sections.append(("video reward", title, found or _missing(video, "video results")))

    text = result_rows(results, "text", "all")
    title = (
        f"Text: % of prompts judged aligned on {_n(n, 'text_queries')}held-out queries (higher is better;"
        " verdict from the paired text score when present)"
    )
    found = _metric_findings(text, "aligned", "{:.0f}", target, text_wins, label=" % aligned")
    sections.append(("% aligned", title, found or _missing(text, "judged prompts")))

    harmful = result_rows(results, "text", "harmful")
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


def markdown_table(results: dict) -> str:
    """The README's results table (one row per method) from results.json, CIs in brackets."""
    text = {r["method"]: r for r in results["text"]["all"]}
    harmful = {r["method"]: r for r in results["text"]["harmful"]}
    video = {r["method"]: r for r in results["video"]["overall"]}
    wins = {(r["baseline"], kind): r for kind in ("text", "video") for r in results[kind]["win_rates"]}

    def ci(row, col, fmt):
        return with_ci(row[col], row[col + "_lo"], row[col + "_hi"], fmt) if row else "-"

    def win(method, kind):
        r = wins.get((method, kind))
        return with_ci(r["win_rate"], r["lo"], r["hi"], "{:.2f}") if r else "-"

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
              "harmful_queries": sum(map(is_harmful, real)),
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
        # a stage still running (06 itself) has no seconds: None, as JSON has no NaN
        "timings": {"stages": {r.stage: None if pd.isna(r.seconds) else r.seconds
                               for r in timings.itertuples() if not r.stage.startswith("total")},
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
