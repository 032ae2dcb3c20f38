"""Stage 07, reward-hacking diagnostics: does a higher reward mean a better video for the query?

- reward against prompt length, per method (a reward that grows with length alone invites padding);
- per-dimension change of VPO against SFT (did any checklist dimension get worse while the total rose?);
- a prompt-insensitivity probe: the reward of a video made from an irrelevant prompt (another scene's caption,
  or nothing) against the right one, for each video model (a reward that barely moves is not measuring
  alignment, the failure VideoScore users report);
- prompt-length drift from SFT to VPO (DPO's well-known drift toward longer outputs).

Every estimate has a percentile bootstrap 95% CI (:func:`vpolib.analysis.bootstrap_ci`, or the same resampling
of query ids for paired and correlation statistics).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from vpolib.analysis import mean_ci, per_model


def n_words(text: str | None) -> int:
    """Whitespace-separated words in ``text`` (0 for None)."""
    return len((text or "").split())


def resample_ci(
    stat: Callable[[np.ndarray], float], n: int, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float]:
    """Percentile bootstrap ``(lo, hi)`` of ``stat(idx)`` over ``n_boot`` resamples of the row indices 0..n-1
    (for statistics of several paired columns, e.g. a correlation). Resamples where ``stat`` is NaN (a
    constant column) are dropped."""
    if n == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    vals = np.array([stat(rng.integers(0, n, size=n)) for _ in range(n_boot)], dtype=float)
    vals = vals[~np.isnan(vals)]
    if vals.size == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.quantile(vals, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when either side is constant."""
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def length_reward(
    frame: pd.DataFrame, n_boot: int = 1000, seed: int = 0, value: str = "reward"
) -> pd.DataFrame:
    """Per method: prompt length (words) and its Spearman correlation with ``value`` (CI by resampling
    videos), the least-squares slope of ``value`` per 10 words, and the mean ``value`` of its shorter and
    longer half (split at the method's median length). ``frame`` needs ``method``, ``words``, ``value``."""
    rows = []
    for method, g in frame.groupby("method", sort=False):
        x, y = g["words"].to_numpy(float), g[value].to_numpy(float)
        rho = spearman(x, y)
        lo, hi = resample_ci(lambda i, x=x, y=y: spearman(x[i], y[i]), len(x), n_boot, seed)
        slope = float(np.polyfit(x, y, 1)[0] * 10) if len(x) > 1 and x.std() > 0 else float("nan")
        short = y[x <= np.median(x)] if len(x) else y
        long_ = y[x > np.median(x)] if len(x) else y
        rows.append(
            {
                "method": method,
                "n": len(g),
                "words": float(x.mean()) if len(x) else float("nan"),
                "spearman": rho,
                "lo": lo,
                "hi": hi,
                "slope_per_10_words": slope,
                f"{value}_short_half": float(short.mean()) if short.size else float("nan"),
                f"{value}_long_half": float(long_.mean()) if long_.size else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def verdict(lo: float, hi: float, better: str = "better", worse: str = "worse") -> str:
    """``better`` if the CI lies above 0, ``worse`` if below, else "no change shown"."""
    if lo > 0:
        return better
    if hi < 0:
        return worse
    return "no change shown"


def dimension_delta(
    questions: pd.DataFrame, target: str = "vpo", base: str = "sft", n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Per checklist dimension (question kind): pass rate of ``target`` minus ``base`` on the same questions of
    the same queries. Per query the difference is averaged over its questions of the kind, and the CI resamples
    queries. ``questions`` is :func:`vpolib.analysis.question_frame`'s long form."""
    cols = ["kind", "n", "base", "target", "delta", "lo", "hi", "verdict"]
    both = questions[questions["method"].isin([target, base])]
    if both.empty:
        return pd.DataFrame(columns=cols)
    wide = both.pivot_table(
        index=["id", "question", "kind"], columns="method", values="passed", aggfunc="mean"
    )
    if target not in wide or base not in wide:
        return pd.DataFrame(columns=cols)
    wide = wide[[base, target]].dropna().reset_index()
    rows = []
    for kind, g in wide.groupby("kind", sort=True):
        per_query = g.groupby("id")[[base, target]].mean()  # [queries, 2]
        diff = (per_query[target] - per_query[base]).to_numpy()
        ci = mean_ci(diff, n_boot, seed)
        rows.append(
            {
                "kind": kind,
                "n": ci["n"],
                "base": float(per_query[base].mean()),
                "target": float(per_query[target].mean()),
                "delta": ci["mean"],
                "lo": ci["lo"],
                "hi": ci["hi"],
                "verdict": verdict(ci["lo"], ci["hi"]),
            }
        )
    return pd.DataFrame(rows, columns=cols)


def length_drift(
    prompts: dict[str, dict[str, str]],
    base: str = "sft",
    targets: list[str] | None = None,
    groups: dict[str, str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Prompt length (words) of each target against ``base`` on the same queries: mean words of both, the
    paired difference with its CI and the ratio of means. ``targets`` defaults to every method named
    ``vpo*``; ``groups`` ({id: group}, e.g. the query source) adds one row per group besides "all"."""
    cols = ["target", "group", "n", "base_words", "target_words", "delta", "lo", "hi", "ratio", "verdict"]
    if base not in prompts:
        return pd.DataFrame(columns=cols)
    targets = targets if targets is not None else [m for m in prompts if m.startswith("vpo")]
    rows = []
    for target in targets:
        ids = [i for i in prompts.get(target, {}) if i in prompts[base]]
        for group in ["all", *sorted({(groups or {}).get(i) for i in ids} - {None})]:
            sel = [i for i in ids if group == "all" or (groups or {}).get(i) == group]
            b = np.array([n_words(prompts[base][i]) for i in sel], dtype=float)
            t = np.array([n_words(prompts[target][i]) for i in sel], dtype=float)
            ci = mean_ci(t - b, n_boot, seed)
            rows.append(
                {
                    "target": target,
                    "group": group,
                    "n": len(sel),
                    "base_words": float(b.mean()) if len(sel) else float("nan"),
                    "target_words": float(t.mean()) if len(sel) else float("nan"),
                    "delta": ci["mean"],
                    "lo": ci["lo"],
                    "hi": ci["hi"],
                    "ratio": float(t.mean() / b.mean()) if len(sel) and b.mean() else float("nan"),
                    "verdict": verdict(ci["lo"], ci["hi"], "longer", "shorter"),
                }
            )
    return pd.DataFrame(rows, columns=cols)


# ---- prompt-insensitivity probe ------------------------------------------------------------------------------

PROBE_KINDS = ("right", "irrelevant", "empty")


def probe_prompts(queries: list[dict]) -> dict[str, dict[str, str]]:
    """For each query with a caption: the right prompt (its own caption), an irrelevant one (the caption of the
    next query whose caption differs, cyclically) and the empty prompt. ``{kind: {id: prompt}}``."""
    items = [q for q in queries if q.get("caption")]
    out: dict[str, dict[str, str]] = {k: {} for k in PROBE_KINDS}
    for i, q in enumerate(items):
        other = next(
            (
                items[(i + j) % len(items)]["caption"]
                for j in range(1, len(items))
                if items[(i + j) % len(items)]["caption"] != q["caption"]
            ),
            None,
        )
        out["right"][q["id"]] = q["caption"]
        if other is not None:
            out["irrelevant"][q["id"]] = other
        out["empty"][q["id"]] = ""
    return out


def run_probe(backend, queries: list[dict], seed_of: Callable[[str], int], batch: int = 64) -> list[dict]:
    """Render every probe prompt of every query (the query's own noise) and score it against the QUERY's
    checklist: ``{"id", "kind", "prompt", "reward"}`` records."""
    prompts = probe_prompts(queries)
    by_id = {q["id"]: q for q in queries}
    jobs = [(kind, qid, p) for kind in PROBE_KINDS for qid, p in prompts[kind].items()]
    out = []
    for start in range(0, len(jobs), batch):
        part = jobs[start : start + batch]
        videos = backend.render([p for _, _, p in part], [seed_of(qid) for _, qid, _ in part])
        for (kind, qid, p), video in zip(part, videos, strict=True):
            res = backend.score(backend.checklist(by_id[qid]["query"]), video)
            out.append({"id": qid, "kind": kind, "prompt": p, "reward": res["score"] / res["max_score"]})
    return out


def probe_table(records: list[dict], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per video model (``model`` column, if any) and probe kind: mean reward with CI; then per model the paired
    gap right - irrelevant (CI over queries) and the ratio irrelevant / right (1.0 = the reward ignores the
    prompt entirely)."""
    frame = pd.DataFrame(records)
    if frame.empty:
        return pd.DataFrame(columns=["model", "row", "n", "value", "lo", "hi"])
    if "model" not in frame:
        frame["model"] = "A"
    rows = []
    for model, g in frame.groupby("model", sort=False):
        for kind in PROBE_KINDS:
            ci = mean_ci(g.loc[g["kind"] == kind, "reward"], n_boot, seed)
            rows.append(
                {
                    "model": model,
                    "row": kind,
                    "n": ci["n"],
                    "value": ci["mean"],
                    "lo": ci["lo"],
                    "hi": ci["hi"],
                }
            )
        wide = g.pivot_table(index="id", columns="kind", values="reward")
        if {"right", "irrelevant"} <= set(wide.columns):
            pair = wide[["right", "irrelevant"]].dropna()
            ci = mean_ci(pair["right"] - pair["irrelevant"], n_boot, seed)
            rows.append(
                {
                    "model": model,
                    "row": "gap right - irrelevant",
                    "n": ci["n"],
                    "value": ci["mean"],
                    "lo": ci["lo"],
                    "hi": ci["hi"],
                }
            )
            r, x = pair["right"].to_numpy(), pair["irrelevant"].to_numpy()
            lo, hi = resample_ci(lambda i, r=r, x=x: x[i].mean() / r[i].mean(), len(r), n_boot, seed)
            ratio = float(x.mean() / r.mean()) if len(r) and r.mean() else float("nan")
            rows.append(
                {
                    "model": model,
                    "row": "ratio irrelevant / right",
                    "n": len(r),
                    "value": ratio,
                    "lo": lo,
                    "hi": hi,
                }
            )
    return pd.DataFrame(rows)


def with_words(frame: pd.DataFrame, prompts: dict[str, dict[str, str]]) -> pd.DataFrame:
    """``frame`` (one row per method and query id) with a ``words`` column: the length of that prompt."""
    words = [n_words(prompts[m][i]) for m, i in zip(frame["method"], frame["id"], strict=True)]
    return frame.assign(words=words)


def length_rewards(
    frames: dict[str, pd.DataFrame], prompts, n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """:func:`length_reward` of every model's video frame (``{model: frame}``), with a ``model`` column."""
    frames = {m: with_words(f, prompts) if len(f) else f for m, f in frames.items()}
    return per_model(length_reward, frames, n_boot=n_boot, seed=seed)


def probe_models(backends: dict, queries: list[dict], seed_of: Callable[[str], int], batch: int = 64) -> list:
    """:func:`run_probe` on each video model (``{model: backend}``), every record tagged with its ``model``."""
    return [dict(r, model=m) for m, b in backends.items() for r in run_probe(b, queries, seed_of, batch)]
