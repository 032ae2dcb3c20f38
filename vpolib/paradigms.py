"""Ways to optimize prompts from one SFT model, compared at equal units of compute (notebook 08).

Rows (paradigms): ``sft`` (greedy); ``sft-best<n>`` (n prompts sampled, the one whose video scores best on a
selection noise kept); ``vpo-paper`` (05's one offline round, the paper's recipe); ``vpo`` (05's iterated
on-policy rounds); ``grpo`` (online RL, :mod:`vpolib.rl`); ``testtime`` (the generate -> score -> rewrite loop
of :mod:`vpolib.testtime`, its best prompt picked on selection noise). Every row's final prompt per held-out
query is rendered with notebook 06's eval seeds, which no paradigm trained or selected on, so rewards are
paired and unbiased. The budget of a row is what it spent beyond the SFT model they all start from, in shared
units: videos rendered, optimizer tokens generated, training steps, wall seconds (:func:`budget_row`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from vpolib import generation, testtime
from vpolib.analysis import mean_ci, paired_difference, paired_win_rates
from vpolib.checkpoints import load_optimizer, optimizer_dir
from vpolib.io import append_jsonl, read_json, read_jsonl, write_json
from vpolib.models import load_tokenizer
from vpolib.noise import video_seed
from vpolib.scoring import score_texts
from vpolib.shapesworld.vocabulary import read_world, world_gaps

ORDER = ["sft", "sft-best", "vpo-paper", "vpo", "grpo", "testtime", "caption"]


def row_order(paradigm: str) -> tuple[int, int]:
    """Rows in :data:`ORDER`, best of n by n; anything else last."""
    if paradigm.startswith("sft-best"):
        return ORDER.index("sft-best"), int(paradigm.removeprefix("sft-best"))
    return (ORDER.index(paradigm) if paradigm in ORDER else len(ORDER)), 0


def select_seed(seed: int, query_id: str, j: int = 0) -> int:
    """The selection noise of sample ``j`` of a held-out query (``#select`` keys: never an eval seed)."""
    return video_seed(seed, f"{query_id}#select{j}")


def pick(samples: list[dict]) -> dict:
    """The sample whose selection render scored best (``reward``); on a tie the earlier one (lower ``j``)."""
    return max(samples, key=lambda r: (r["reward"], -r["j"]))


def budget_row(paradigm: str, videos: int, tokens: int | None, steps: int, seconds: float, **extra) -> dict:
    """One row of the budget table (what a paradigm spent beyond the SFT model)."""
    return {"paradigm": paradigm, "videos": int(videos), "tokens": tokens, "steps": int(steps),
            "seconds": round(float(seconds), 1), **extra}  # fmt: skip


def timing_file(log_path: Path) -> Path:
    """Where a part's wall time is kept beside its log (timing stays out of the JSONL: reruns write the same bytes)."""
    return Path(log_path).with_suffix(".seconds.json")


def best_of_n(cfg, run_dir: Path, queries: list[dict], backend, ns: list[int], log_path: Path):
    """SFT's best of ``n`` for each n in ``ns``: ``max(ns)`` prompts sampled per query (``analysis.sampled_temperature``,
    seeded per batch), each rendered once from its selection noise and scored; the first n samples' best is the
    pick of ``sft-best<n>``. Logged per sample with its tokens (``log_path``, resumable); the wall time of the run
    that made the samples is kept beside the log (:func:`timing_file`). Returns ``(prompts, budgets)``."""
    n = max(ns)
    done = {(r["id"], r["j"]): r for r in read_jsonl(log_path)[0]} if Path(log_path).exists() else {}
    # all queries or none: sampling is seeded per batch of queries, so a resumed run samples the batches an
    # uninterrupted one would (and renders only what is missing)
    todo = queries if any((q["id"], j) not in done for q in queries for j in range(n)) else []
    if todo:
        t0 = time.perf_counter()
        model, tok = load_optimizer(optimizer_dir(run_dir, "sft"), device=cfg.device, dtype=cfg.sft.dtype)
        outs = generation.generate_prompts(
            model, tok, [q["query"] for q in todo], n=n, temperature=cfg.analysis.sampled_temperature, top_p=1.0,
            max_new_tokens=cfg.grpo.max_new_tokens, batch_size=max(1, cfg.generation_batch // n),
            instruction=cfg.instruction, seed=cfg.seed + 8, sources=["shapes"] * len(todo),
        )  # fmt: skip
        jobs = [(q, j, texts[j]) for q, texts in zip(todo, outs, strict=True) for j in range(n)]
        jobs = [job for job in jobs if (job[0]["id"], job[1]) not in done]
        texts, asked = [p for _, _, p in jobs], [q["query"] for q, _, _ in jobs]
        noises = [select_seed(cfg.seed, q["id"], j) for q, j, _ in jobs]
        for k, res in score_texts(backend, texts, asked, noises, cfg.grpo.render_batch):
            q, j, prompt = jobs[k]
            row = {"id": q["id"], "j": j, "prompt": prompt, "reward": res["score"] / res["max_score"],
                   "tokens": len(tok(prompt, add_special_tokens=False)["input_ids"])}  # fmt: skip
            done[(q["id"], j)] = row
            append_jsonl(log_path, row)
        write_json(
            timing_file(log_path), {"seconds": round(time.perf_counter() - t0, 1), "samples": len(todo) * n}
        )
    seconds = read_json(timing_file(log_path))["seconds"] if timing_file(log_path).exists() else 0.0
    prompts, budgets = {}, []
    for k in ns:
        chosen = [[done[(q["id"], j)] for j in range(k)] for q in queries]
        prompts[f"sft-best{k}"] = {
            q["id"]: pick(rows)["prompt"] for q, rows in zip(queries, chosen, strict=True)
        }
        spent = [r for rows in chosen for r in rows]
        budgets.append(budget_row(f"sft-best{k}", len(spent), sum(r["tokens"] for r in spent), 0,
                                  seconds * k / n, when="inference", per_query_videos=k))  # fmt: skip
    return prompts, budgets


def testtime_prompts(cfg, run_dir: Path, queries: list[dict], first: dict[str, str], backend, rounds: int,
                     log_path: Path):  # fmt: skip
    """The test-time loop from SFT's greedy prompts (``first``), ``rounds`` rounds, each render on selection
    noise: the best prompt of each query after the last round, and the loop's budget."""
    t0, before = time.perf_counter(), len(read_jsonl(log_path)[0]) if Path(log_path).exists() else 0
    bcfg = dataclasses.replace(cfg.beyond, testtime_methods=["sft"], testtime_rounds=rounds)
    records, notes = testtime.run_methods(dataclasses.replace(cfg, beyond=bcfg), run_dir, queries, {"sft": first},
                                          backend, log_path, lambda qid: select_seed(cfg.seed, qid))  # fmt: skip
    last = {}
    for r in sorted(records, key=lambda r: r["round"]):
        last[r["id"]] = r
    videos = sum(r["videos"] for r in last.values())
    rewrites = [r["prompt"] for r in records if r["round"] > 1 and r.get("rendered")]
    tok = load_tokenizer(str(optimizer_dir(run_dir, "sft")))
    tokens = sum(len(tok(p, add_special_tokens=False)["input_ids"]) for p in rewrites)
    # the loop's wall time, kept beside its log: a resumed loop that rendered nothing new reports the first run's
    timing = timing_file(log_path)
    if len(read_jsonl(log_path)[0]) > before or not timing.exists():
        write_json(timing, {"seconds": round(time.perf_counter() - t0, 1)})
    budget = budget_row("testtime", videos, tokens, 0, read_json(timing)["seconds"], when="inference",
                        per_query_videos=videos / max(len(last), 1), rewrites=len(rewrites))  # fmt: skip
    return {i: r["best_prompt"] for i, r in last.items()}, budget, notes


def preference_budgets(run_dir: Path) -> list[dict]:
    """``vpo`` and ``vpo-paper`` from 04's and 05's metrics and the manifest: 04 sampled and rendered round 1 (its
    stage time), each later round of 05 sampled and rendered again; training steps and seconds per model."""
    run_dir = Path(run_dir)
    m04 = json.loads((run_dir / "04_feedback" / "metrics.json").read_text())
    m05 = json.loads((run_dir / "05_dpo" / "metrics.json").read_text())
    s04 = json.loads((run_dir / "manifest.json").read_text())["stages"]["04_feedback"].get("seconds") or 0.0
    rounds = [r for r in m05.get("rounds", []) if r["round"] >= 1]
    later = [r.get("collected") or {} for r in rounds[1:]]
    rows = [budget_row(
        "vpo", m04["n_videos"] + sum(c.get("videos_rendered", 0) for c in later),
        (m04.get("tokens_generated") or 0) + sum(c.get("tokens_generated") or 0 for c in later),
        sum(r.get("steps") or 0 for r in rounds), s04 + sum(r.get("seconds") or 0 for r in rounds),
        when="training", rounds=len(rounds))]  # fmt: skip
    paper = m05.get("variants", {}).get("paper")
    if paper:
        rows.append(budget_row("vpo-paper", m04["n_videos"], m04.get("tokens_generated"), paper["steps"],
                               s04 + paper["train_s"], when="training", rounds=1))  # fmt: skip
    return rows


def win_rates_over(frame: pd.DataFrame, base: str = "sft", n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Each paradigm's paired win rate over ``base`` on the same queries (ties count half), with its CI."""
    rows = [paired_win_rates(frame[frame["method"].isin([m, base])], "reward", m, n_boot, seed)
            for m in frame["method"].unique() if m != base]  # fmt: skip
    return pd.concat([r for r in rows if len(r)], ignore_index=True) if rows else pd.DataFrame()


def comparison(frame: pd.DataFrame, budgets: list[dict], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per paradigm: held-out reward with its CI, win rate over SFT with its CI, the paired reward gain over
    SFT with its CI, the budget, and that gain per 1,000 videos rendered with its CI (None for a row that rendered
    none)."""
    wins = win_rates_over(frame, "sft", n_boot, seed).set_index("target") if len(frame) else pd.DataFrame()
    spent = {b["paradigm"]: b for b in budgets}
    sft = frame.loc[frame["method"] == "sft", "reward"].mean()
    rows = []
    for m in sorted(frame["method"].unique(), key=row_order):
        ci = mean_ci(frame.loc[frame["method"] == m, "reward"], n_boot, seed)
        b = spent.get(m, budget_row(m, 0, 0, 0, 0.0, when="none" if m in ("sft", "caption") else "?"))
        row = {"paradigm": m, "n": ci["n"], "reward": ci["mean"], "reward_lo": ci["lo"], "reward_hi": ci["hi"],
               **{k: b.get(k) for k in ("videos", "tokens", "steps", "seconds", "when")}}  # fmt: skip
        if m in wins.index:
            w = wins.loc[m]
            row |= {"win_rate": float(w["win_rate"]), "win_lo": float(w["lo"]), "win_hi": float(w["hi"])}
        gain = paired_difference(frame, "reward", m, "sft", n_boot, seed) if m != "sft" else pd.DataFrame()
        if len(gain):  # paired over the queries both answered: the CI on the gain, and per 1,000 videos
            g = gain.iloc[0]
            row |= {"gain": float(g["diff"]), "gain_lo": float(g["lo"]), "gain_hi": float(g["hi"])}
        per_1k = 1000 / b["videos"] if b.get("videos") else None
        row["gain_per_1k_videos"] = (ci["mean"] - sft) * per_1k if per_1k else None
        if per_1k and len(gain):
            row |= {"gain_per_1k_lo": row["gain_lo"] * per_1k, "gain_per_1k_hi": row["gain_hi"] * per_1k}
        rows.append(row)
    return pd.DataFrame(rows)


def dropped_share(query: str, prompt: str) -> float | None:
    """Share of what a ShapesWorld query asks (each object's colour, shape, size, motion; the background), read
    through the world's synonyms, that the prompt leaves out or contradicts; None when the query asks nothing."""
    objects, background = read_world(query)
    asked = sum(bool(v) for obj in objects for v in obj.values()) + bool(background)
    return len(world_gaps(query, prompt)[0]) / asked if asked else None


def hacking(prompts: dict[str, dict[str, str]], queries: list[dict]) -> pd.DataFrame:
    """Reward-hacking signs per paradigm on its held-out prompts: words per prompt, distinct words over all words
    (vocabulary collapse), and the share of the query's asked values the prompt dropped (:func:`dropped_share`)."""
    by_id = {q["id"]: q["query"] for q in queries}
    rows = []
    for m, ps in prompts.items():
        words = [p.lower().split() for i, p in ps.items() if i in by_id]
        shares = [dropped_share(by_id[i], p) for i, p in ps.items() if i in by_id]
        dropped = [x for x in shares if x is not None]
        flat = [w for ws in words for w in ws]
        rows.append({"paradigm": m, "words": float(np.mean([len(w) for w in words])) if words else float("nan"),
                     "distinct_share": len(set(flat)) / len(flat) if flat else float("nan"),
                     "query_words_dropped": float(np.mean(dropped)) if dropped else float("nan")})  # fmt: skip
    return pd.DataFrame(rows)
