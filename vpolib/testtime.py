"""Stage 07, a test-time baseline: generate -> score -> rewrite, several rounds per query.

Peers that skip training (RAPO++'s SSPO, Google's VISTA) loop at inference time instead: render the prompt,
judge the video, rewrite the prompt with the judge's feedback, keep the best. Here, for each held-out
ShapesWorld query and each optimizer:

- round 1 renders the optimizer's own single held-out prompt (what VPO is evaluated on: one video);
- each later round rewrites with the SAME optimizer, given the query plus the checklist items the best video
  so far failed ("..., a red object, the red circle moves from the left to the right"), sampled at
  ``temperature``; renders it from the query's noise; scores it against the query's checklist; keeps the best;
- a query whose best video passes every item stops (no more videos rendered for it).

Cost = videos rendered per query. Selecting on the very reward (and noise) that is reported flatters the
loop, as best-of-n does, so every round also reports the best prompt rendered from FRESH noise (a second seed
never used for selection): what the rewritten prompt is worth by itself.

The log (``{"key": "<method>|<id>|<round>", ...}`` JSONL) is appended one whole round at a time, so a killed
run resumes at the first unfinished round and writes what an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from vpolib.analysis import mean_ci
from vpolib.analysis import records as table_rows  # `records` is the loop log in this module
from vpolib.checkpoints import load_optimizer, optimizer_dir
from vpolib.generation import generate_prompts
from vpolib.io import append_jsonl, read_jsonl
from vpolib.shapesworld.world import CAPTION_MOTION


def hint(question) -> str:
    """A failed checklist item as a short statement of what the video must show."""
    t = getattr(question, "target", None) or {}
    kind = getattr(question, "kind", "")
    if not t:
        return question.text.rstrip("?")
    name = " ".join(v for v in (t.get("colour"), t.get("shape") or "object") if v)
    if kind in ("colour", "object"):
        return f"a {name}"
    if kind == "shape":
        return f"the {t.get('colour') or 'main'} object is a {t['shape']}"
    if kind == "size":
        return f"a {t['size']} {name}"
    if kind == "motion":
        return f"the {name} {CAPTION_MOTION.get(t['motion'], 'moves ' + t['motion'])}"
    if kind == "background":
        return f"a {t['background']} background"
    if kind == "neg":
        return f"no {t.get('colour') or t.get('shape')}"
    if kind == "quality":
        return {"stable": "no flicker", "intact": "each object whole and sharp"}.get(
            t.get("check"), question.text
        )
    return question.text.rstrip("?")


FEEDBACK = ("statements", "questions", "none")


def feedback_query(query: str, failed: list, max_hints: int = 4, style: str = "statements") -> str:
    """The optimizer's input for a rewrite: the query, then what the best video so far failed (content items
    first, at most ``max_hints``). ``style``: "statements" (:func:`hint`: what the video must show, in the
    checklist's words), "questions" (the checklist questions as asked) or "none" (the query alone: the loop
    is then best-of-n sampling with no feedback, its control)."""
    if style not in FEEDBACK:
        raise ValueError(f"feedback style must be one of {FEEDBACK}, got {style!r}")
    if style == "none":
        return query
    order = sorted(failed, key=lambda q: (getattr(q, "kind", "") == "quality", -getattr(q, "weight", 1.0)))
    say = hint if style == "statements" else (lambda q: q.text)
    hints = list(dict.fromkeys(say(q) for q in order))[:max_hints]
    return f"{query}, {', '.join(hints)}" if hints else query


def run_loop(
    method: str,
    queries: list[dict],
    first_prompts: dict[str, str],
    rewrite: Callable[[list[str], list[str], int], list[str]],
    render_score: Callable[[list[str], list[str]], list[dict]],
    fresh_score: Callable[[list[str], list[str]], list[dict]] | None,
    checklist: Callable[[str], list],
    rounds: int,
    log_path: Path,
    feedback: str = "statements",
) -> list[dict]:
    """Up to ``rounds`` rounds for every query in ``queries`` that has a first prompt; returns this method's
    records (one per query and round, stopped queries included with ``rendered`` False).

    ``rewrite(inputs, ids, round) -> prompts``; ``render_score(prompts, ids)`` and ``fresh_score(prompts,
    ids)`` -> ``{"answers": {qid: "yes"|"no"}, "score", "max_score"}`` per prompt (selection noise, fresh
    noise). A record: ``method, id, round, input, prompt, rendered, reward, best_prompt, best_reward,
    fresh_reward (of the best prompt), videos (rendered so far), stopped``.
    """
    log_path = Path(log_path)
    logged = [r for r in (read_jsonl(log_path)[0] if log_path.exists() else []) if r["method"] == method]
    by_round: dict[int, dict[str, dict]] = {}
    for r in logged:
        by_round.setdefault(r["round"], {})[r["id"]] = r
    items = [q for q in queries if q["id"] in first_prompts]
    fresh_cache: dict[tuple[str, str], float] = {}
    for rnd in range(1, rounds + 1):
        if all(q["id"] in by_round.get(rnd, {}) for q in items):
            continue  # finished round (resumed)
        prev = by_round.get(rnd - 1, {})
        active, inputs, carried = [], [], []
        for q in items:
            p = prev.get(q["id"])
            if p is not None and p["stopped"]:
                carried.append(q)
                continue
            active.append(q)
            if rnd == 1:
                inputs.append(q["query"])
            else:
                questions = checklist(q["query"])
                failed = [x for x in questions if p["best_answers"].get(str(x.id)) != "yes"]
                inputs.append(feedback_query(q["query"], failed, style=feedback))
        ids = [q["id"] for q in active]
        prompts = [first_prompts[i] for i in ids] if rnd == 1 else (rewrite(inputs, ids, rnd) if ids else [])
        scores = render_score(prompts, ids) if ids else []
        records = []
        for q, inp, prompt, res in zip(active, inputs, prompts, scores, strict=True):
            reward = res["score"] / res["max_score"] if res["max_score"] else 0.0
            p = prev.get(q["id"])
            better = p is None or reward > p["best_reward"]
            best = (
                {"best_prompt": prompt, "best_reward": reward, "best_answers": res["answers"]}
                if better
                else {k: p[k] for k in ("best_prompt", "best_reward", "best_answers")}
            )
            records.append(
                {
                    "key": f"{method}|{q['id']}|{rnd}",
                    "method": method,
                    "id": q["id"],
                    "round": rnd,
                    "input": inp,
                    "prompt": prompt,
                    "rendered": True,
                    "reward": reward,
                    **best,
                    "videos": (p["videos"] if p else 0) + 1,
                    "stopped": best["best_reward"] >= 1.0,
                }
            )
        for q in carried:
            p = prev[q["id"]]
            records.append(
                {
                    **p,
                    "key": f"{method}|{q['id']}|{rnd}",
                    "round": rnd,
                    "input": None,
                    "prompt": None,
                    "rendered": False,
                }
            )
        if fresh_score is not None:
            need = [
                r
                for r in records
                if (r["id"], r["best_prompt"]) not in fresh_cache and "fresh_reward" not in r
            ]
            if need:
                res = fresh_score([r["best_prompt"] for r in need], [r["id"] for r in need])
                for r, s in zip(need, res, strict=True):
                    fresh_cache[(r["id"], r["best_prompt"])] = (
                        s["score"] / s["max_score"] if s["max_score"] else 0.0
                    )
            for r in records:
                if r["rendered"] or "fresh_reward" not in r:
                    r["fresh_reward"] = fresh_cache[(r["id"], r["best_prompt"])]
        for r in sorted(records, key=lambda r: r["id"]):
            append_jsonl(log_path, r)
        by_round[rnd] = {r["id"]: r for r in records}
    wanted = {q["id"] for q in items}
    return [
        r for rnd in sorted(by_round) if rnd <= rounds for r in by_round[rnd].values() if r["id"] in wanted
    ]


def rounds_table(records: list[dict], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per method and round: the best-so-far reward (selection noise) and the best prompt's fresh-noise reward,
    each with CIs over queries; videos rendered per query (mean: the cost); share of queries stopped."""
    frame = pd.DataFrame(records)
    cols = [
        "method",
        "round",
        "n",
        "videos",
        "best_reward",
        "best_lo",
        "best_hi",
        "fresh_reward",
        "fresh_lo",
        "fresh_hi",
        "stopped",
    ]
    if frame.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (method, rnd), g in frame.groupby(["method", "round"], sort=True):
        best = mean_ci(g["best_reward"], n_boot, seed)
        fresh = (
            mean_ci(g["fresh_reward"].dropna(), n_boot, seed)
            if "fresh_reward" in g
            else {"mean": float("nan"), "lo": float("nan"), "hi": float("nan")}
        )
        rows.append(
            {
                "method": method,
                "round": int(rnd),
                "n": best["n"],
                "videos": float(g["videos"].mean()),
                "best_reward": best["mean"],
                "best_lo": best["lo"],
                "best_hi": best["hi"],
                "fresh_reward": fresh["mean"],
                "fresh_lo": fresh["lo"],
                "fresh_hi": fresh["hi"],
                "stopped": float(g["stopped"].mean()),
            }
        )
    return pd.DataFrame(rows, columns=cols)


def gain_table(records: list[dict], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per method: the last round against round 1 (the single prompt), paired over queries, for the selected
    reward and for the fresh-noise reward."""
    frame = pd.DataFrame(records)
    cols = ["method", "metric", "n", "rounds", "gain", "lo", "hi"]
    if frame.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for method, g in frame.groupby("method", sort=True):
        last = int(g["round"].max())
        for metric in ("best_reward", "fresh_reward"):
            if metric not in g:
                continue
            wide = g.pivot_table(index="id", columns="round", values=metric)
            if 1 not in wide or last not in wide:
                continue
            diff = (wide[last] - wide[1]).dropna()
            ci = mean_ci(diff, n_boot, seed)
            rows.append(
                {
                    "method": method,
                    "metric": metric,
                    "n": ci["n"],
                    "rounds": last,
                    "gain": ci["mean"],
                    "lo": ci["lo"],
                    "hi": ci["hi"],
                }
            )
    return pd.DataFrame(rows, columns=cols)


def optimizer_rewriter(
    model, tokenizer, seed: int, temperature: float, max_new_tokens: int, batch_size: int, instruction: str
) -> Callable[[list[str], list[str], int], list[str]]:
    """``rewrite(inputs, ids, round)`` with a trained optimizer: one sampled prompt per input; the sampling seed
    depends on (seed, round) and each batch's inputs, so a rerun samples the same prompts."""

    def rewrite(inputs: list[str], ids: list[str], rnd: int) -> list[str]:
        outs = generate_prompts(
            model,
            tokenizer,
            inputs,
            n=1,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            instruction=instruction,
            seed=seed * 100 + rnd,  # with each batch's inputs (optimizer.batch_seed): reruns sample the same
            sources=["shapes"] * len(inputs),  # the loop runs on ShapesWorld queries
        )
        return [texts[0] for texts in outs]

    return rewrite


def run_methods(
    cfg,
    run_dir: Path,
    queries: list[dict],
    prompts: dict[str, dict[str, str]],
    backend,
    log_path: Path,
    seed_of: Callable[[str], int],
    fresh_seed_of: Callable[[str], int] | None = None,
) -> tuple[list[dict], list[str]]:
    """The loop of :func:`run_loop` for every optimizer in ``cfg.beyond.testtime_methods`` (its held-out prompt
    is round 1; it rewrites later rounds), rendering with ``backend`` from ``seed_of(id)`` noise (and scoring
    the best prompt again from ``fresh_seed_of(id)``). Returns ``(records, notes)``; a method without prompts
    or a saved model is skipped with a note. A model is loaded only when a round is left to sample."""
    bcfg = cfg.beyond
    by_id = {q["id"]: q for q in queries}
    checklists = {q["id"]: backend.checklist(q["query"]) for q in queries}
    batch = cfg.analysis.video_batch

    def scorer(seeds: Callable[[str], int]):
        def render_score(texts: list[str], ids: list[str]) -> list[dict]:
            out = []
            for start in range(0, len(texts), batch):
                part = ids[start : start + batch]
                videos = backend.render(texts[start : start + batch], [seeds(i) for i in part])
                out += [backend.score(checklists[i], v) for i, v in zip(part, videos, strict=True)]
            return out

        return render_score

    records, notes = [], []
    for method in bcfg.testtime_methods:  # "vpo" or "vpo:none" (an optimizer and its feedback style)
        name, _, style = method.partition(":")
        first = {i: p for i, p in prompts.get(name, {}).items() if i in by_id}
        model_dir = optimizer_dir(run_dir, name) if name == "sft" or name.startswith("vpo") else None
        if not first or model_dir is None or not model_dir.exists():
            notes.append(f"test-time loop: {method} skipped (no held-out prompts or no saved model)")
            continue
        loaded = {}
        stage_cfg = cfg.sft if name == "sft" else cfg.dpo

        def rewrite(inputs, ids, rnd, model_dir=model_dir, loaded=loaded, stage_cfg=stage_cfg):
            if "fn" not in loaded:
                model, tokenizer = load_optimizer(model_dir, device=cfg.device, dtype=stage_cfg.dtype)
                loaded["fn"] = optimizer_rewriter(
                    model,
                    tokenizer,
                    cfg.seed,
                    bcfg.testtime_temperature,
                    bcfg.testtime_max_new_tokens,
                    cfg.generation_batch,
                    cfg.instruction,
                )
            return loaded["fn"](inputs, ids, rnd)

        records += run_loop(
            method,
            queries,
            first,
            rewrite,
            scorer(seed_of),
            scorer(fresh_seed_of) if fresh_seed_of else None,
            backend.checklist,
            bcfg.testtime_rounds,
            log_path,
            feedback=style or bcfg.testtime_feedback,
        )
    return records, notes


def summary(records: list[dict], n_queries: int, bcfg, n_boot: int = 1000, seed: int = 0):
    """``(rounds, gains, part)``: :func:`rounds_table`, :func:`gain_table` and results.json's part of the loop."""
    rounds, gains = rounds_table(records, n_boot, seed), gain_table(records, n_boot, seed)
    part = {"rounds": table_rows(rounds), "gains": table_rows(gains), "n_queries": n_queries,
            "max_rounds": bcfg.testtime_rounds, "temperature": bcfg.testtime_temperature}  # fmt: skip
    return rounds, gains, part
