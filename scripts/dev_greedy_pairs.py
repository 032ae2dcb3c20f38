"""Pairs against the greedy prompt, the one the evaluation decodes, measured on the dev split (never held out).

The profile's pairs set the best of a query's k samples against the worst; at temperature 1.0 the worst is often a
prompt the model would almost never write greedily, so pushing it down need not move the greedy prompt. Here the
SFT model's greedy prompt for each of 04's queries is rendered with the samples' noise seeds and judged, and is the
``rejected`` side: video, the best sample over the greedy prompt when it beats it past the margin; text, a passing
sample over the greedy prompt when the judge fails it. ``vs greedy`` trains on those pairs alone, ``vs greedy, else
the profile's`` falls back to the profile's pair for the other queries. Each trains one round from SFT and is
scored as ``scripts/dev_sizes.py`` scores (run that first: its SFT and profile rows are the baselines). Also
printed: each pair's log-probabilities under SFT and after training, i.e. how far one round moves them.

    python scripts/dev_greedy_pairs.py --run-dir outputs/cpu-V --json docs/results/cpu/dev_greedy_pairs.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from dev_sizes import PROFILE, grow_queries, score, subset, train_pairs

from vpolib import checkpoints, feedback, generation, preference, refine, scoring, text_feedback, training_log
from vpolib.analysis import paired_gain
from vpolib.config import load_config
from vpolib.io import read_jsonl, write_json
from vpolib.judge import build_judge
from vpolib.video import make_video_backend


def greedy_scored(cfg, sft_dir: Path, queries: list[dict], rendered: set[str], out: Path, judge, backend):
    """The SFT model's greedy prompt per query (04's length budget), rendered with the samples' noise seeds (the
    same keys: query id, seed index, round 1) when in ``rendered``, and judged: ``(scored videos, verdicts)``."""
    fb = cfg.feedback
    model, tok = checkpoints.load_optimizer(sft_dir, device=cfg.device, dtype=cfg.dpo.dtype)
    greedy = generation.generate_heldout(model, tok, queries, out / "prompts.jsonl", "greedy", fb.max_new_tokens,
                                         cfg.generation_batch, cfg.instruction)  # fmt: skip
    del model
    rows = [
        {"id": r["id"], "query": r["query"], "source": r.get("source"), "prompts": [r["prompt"]]}
        for r in greedy
    ]
    scored = scoring.render_and_score([r for r in rows if r["id"] in rendered], backend, out, cfg.seed, False,
                                      fb.render_batch, fb.reward_seeds, 1)  # fmt: skip
    by_id = {r["id"]: r for r in queries}
    refiner = refine.RuleRefiner(cfg.judge.max_words)
    return scored, text_feedback.judge_samples(rows, by_id, judge, refiner, out / "text_critique_log.jsonl")


def greedy_pairs(cfg, videos, verdicts, g_videos, g_verdicts, fallback: bool) -> tuple[list, list, dict]:
    """Text and video pairs whose rejected side is the greedy prompt; with ``fallback`` the profile's pair of a
    query that gives none. Returns the text rows, the video rows and the count per kind."""
    fb, counts = (
        cfg.feedback,
        dict.fromkeys(("video_vs_greedy", "video_fallback", "text_vs_greedy", "text_fallback"), 0),
    )
    greedy = {q: s[0] | {"k": "greedy"} for q, s in preference.sample_rewards(g_videos).items()}
    video_rows = []
    for q, samples in preference.sample_rewards(videos).items():
        best, _ = preference.best_and_worst(samples)
        if best["reward"] - greedy[q]["reward"] > fb.margin:
            pair = {"chosen": best, "rejected": greedy[q], "dominant": False}
            video_rows.append(preference.video_pair_row(pair, cfg.instruction))
            counts["video_vs_greedy"] += 1
        elif fallback and (pair := preference.video_pair(samples, fb.margin, fb.video_rule)[0]):
            video_rows.append(preference.video_pair_row(pair, cfg.instruction))
            counts["video_fallback"] += 1
    g_by_query, text_rows = {r["query_id"]: r for r in g_verdicts}, []
    for q, group in preference.group_critiques(verdicts).items():
        g = g_by_query.get(q)
        passing = [
            r for r in group if r["status"] == "pass" and g and r["prompt"].strip() != g["prompt"].strip()
        ]
        if g and g["status"] in preference.FAILED and passing:
            pair = {"chosen": passing[0]["prompt"], "rejected": g["prompt"], "kind": "vs_greedy",
                    "why": "; ".join(g["verdict"]["reasons"])}  # fmt: skip
            text_rows.append(preference.text_pair_row(q, g, pair, cfg.instruction))
            counts["text_vs_greedy"] += 1
        elif fallback:
            rows, _ = preference.text_pairs(group, cfg.instruction)
            text_rows += rows
            counts["text_fallback"] += len(rows)
    return text_rows, video_rows, counts


def logprobs(cfg, model_dir: Path, pairs: list[dict]) -> list[dict]:
    """Each pair's ``{"chosen", "rejected"}`` log-probability (summed over its tokens) under ``model_dir``."""
    model, tok = checkpoints.load_optimizer(model_dir, device=cfg.device, dtype=cfg.dpo.dtype)
    return [training_log.pair_logprobs(model, tok, p) for p in pairs]


def moved(before: list[dict], after: list[dict]) -> dict:
    """Medians over pairs: log p of each side before, and how far training moved each side and their margin."""
    med = lambda xs: round(statistics.median(xs), 2)  # noqa: E731
    return {
        "n": len(before),
        "chosen_before": med([b["chosen"] for b in before]),
        "rejected_before": med([b["rejected"] for b in before]),
        "chosen_moved": med([a["chosen"] - b["chosen"] for a, b in zip(after, before, strict=True)]),
        "rejected_moved": med([a["rejected"] - b["rejected"] for a, b in zip(after, before, strict=True)]),
        "margin_moved": med(
            [
                (a["chosen"] - a["rejected"]) - (b["chosen"] - b["rejected"])
                for a, b in zip(after, before, strict=True)
            ]
        ),  # fmt: skip
    }


def fresh_gaps(cfg, videos: list[dict], g_videos: list[dict], out: Path, backend, seeds: int = 4) -> dict:
    """Whether a pair's gap is the prompts' or the noise's: each query's best and worst sample and its greedy prompt
    rendered again with ``seeds`` noise seeds never used for pairing (round 99 of the seed keys), and per kind of
    pair (best vs greedy, best vs worst past the margin) the mean gap on 04's seeds and on the fresh ones."""
    samples, greedy = preference.sample_rewards(videos), preference.sample_rewards(g_videos)
    rows, old = [], {}
    for q, ss in samples.items():
        best, worst = preference.best_and_worst(ss)
        rows.append({"id": q, "query": best["query"], "source": best.get("source"),
                     "prompts": [best["prompt"], worst["prompt"], greedy[q][0]["prompt"]]})  # fmt: skip
        old[q] = (best["reward"], worst["reward"], greedy[q][0]["reward"])
    scored = scoring.render_and_score(
        rows, backend, out, cfg.seed, False, cfg.feedback.render_batch, seeds, 99
    )
    new = {q: [s["reward"] for s in ss] for q, ss in preference.sample_rewards(scored).items()}
    report = {"seeds": seeds, "queries": len(rows),
              "mean": {k: round(statistics.mean(new[q][i] for q in new), 3)
                       for i, k in enumerate(("best", "worst", "greedy"))}}  # fmt: skip
    for name, other in (("best_vs_greedy", 2), ("best_vs_worst", 1)):
        gaps = [
            (o[0] - o[other], new[q][0] - new[q][other])
            for q, o in old.items()
            if o[0] - o[other] > cfg.feedback.margin
        ]
        report[name] = {"pairs": len(gaps), "gap_pairing_seeds": round(statistics.mean(g for g, _ in gaps), 3),
                        "gap_fresh_seeds": round(statistics.mean(g for _, g in gaps), 3),
                        "fresh_gap_positive": sum(g > 0 for _, g in gaps),
                        "fresh_gap_past_margin": sum(g > cfg.feedback.margin for _, g in gaps)}  # fmt: skip
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--seeds", type=int, default=3, help="noise seeds per dev prompt")
    p.add_argument("--longer", nargs="*", default=["4:1e-4", "4:3e-4"], metavar="EPOCHS:RATE",
                   help="the pairs against the greedy prompt trained longer / faster (DPO epochs and rate)")  # fmt: skip
    p.add_argument("--grow", type=int, default=4,
                   help="also with N times the ShapesWorld queries (scripts/dev_sizes.py's fresh ones); 1: not")  # fmt: skip
    a = p.parse_args()
    cfg = load_config(json.loads((a.run_dir / "manifest.json").read_text())["profile"])
    fb, stage04, sizes, work = (
        cfg.feedback,
        a.run_dir / "04_feedback",
        a.run_dir / "dev_sizes",
        a.run_dir / "dev_greedy",
    )
    sft_dir = a.run_dir / "03_sft" / "model"
    pool = read_jsonl(a.run_dir / "01_data" / "splits" / "dpo_pool.jsonl")[0]
    rendered, text_only, _ = feedback.feedback_queries(pool, fb)
    dev = preference.dev_queries(pool, fb, None)
    dev_text = preference.dev_text_queries(pool, fb, cfg.dpo.n_dev_text)
    judge, backend = build_judge(cfg, cache_dir=sizes / "cache"), make_video_backend(cfg)
    videos, verdicts = subset(read_jsonl(stage04 / "scores.jsonl")[0], read_jsonl(stage04 / "text_critique_log.jsonl")[0],
                              {r["id"] for r in rendered + text_only}, fb.samples_per_query, fb.reward_seeds)  # fmt: skip
    g_videos, g_verdicts = greedy_scored(cfg, sft_dir, rendered + text_only, {r["id"] for r in rendered},
                                         work / "greedy", judge, backend)  # fmt: skip
    g_reward = [s[0]["reward"] for s in preference.sample_rewards(g_videos).values()]  # one sample a query
    noise = fresh_gaps(cfg, videos, g_videos, work / "fresh_seeds", backend)
    print("pairs on fresh noise seeds:", json.dumps(noise), flush=True)
    out = {"run": a.run_dir.name, "n_dev": len(dev), "seeds": a.seeds,
           "greedy": {"reward": round(statistics.mean(g_reward), 4),
                      "judge_pass": round(sum(r["status"] == "pass" for r in g_verdicts) / len(g_verdicts), 3)},
           "fresh_seeds": noise, "rows": []}  # fmt: skip
    base = {}
    for name in ("sft", PROFILE):
        d = sizes / name
        base[name] = score(
            cfg, sft_dir if name == "sft" else d / "model", d, dev, dev_text, judge, backend, a.seeds
        )
    profile_pairs = read_jsonl(sizes / PROFILE / "pairs.jsonl")[0]
    out["profile_pairs_moved"] = moved(logprobs(cfg, sft_dir, profile_pairs),
                                       logprobs(cfg, sizes / PROFILE / "model", profile_pairs))  # fmt: skip
    data = {1: (videos, verdicts, g_videos, g_verdicts)}
    # more queries: dev_sizes.py's fresh ones (its x<N> row's samples), and their greedy prompts
    if a.grow > 1:
        fresh, _ = grow_queries(cfg, sft_dir, (a.grow - 1) * len(rendered), sizes / "extra", judge, backend)
        more = subset(read_jsonl(sizes / "extra" / "scores.jsonl")[0],
                      read_jsonl(sizes / "extra" / "text_critique_log.jsonl")[0], {r["id"] for r in fresh},
                      fb.samples_per_query, fb.reward_seeds)  # fmt: skip
        g_more = greedy_scored(
            cfg, sft_dir, fresh, {r["id"] for r in fresh}, work / "greedy_extra", judge, backend
        )
        data[a.grow] = tuple(x + y for x, y in zip(data[1], (*more, *g_more), strict=True))
    variants = [("vs greedy", False, {}), (f"vs greedy, else the {PROFILE}'s", True, {})]
    for spec in a.longer:  # how far more steps move the greedy prompt
        epochs, rate = spec.split(":")
        knobs = {"num_train_epochs": int(epochs), "learning_rate": float(rate)}
        variants.append((f"vs greedy, {epochs} epochs, rate {float(rate):g}", False, knobs))
    if a.grow > 1:
        variants += [
            (f"{name}, ShapesWorld queries x{a.grow}", fallback, {}) for name, fallback, _ in variants[:2]
        ]
    for name, fallback, knobs in variants:
        d = work / name.replace(" ", "_").replace(",", "").replace("'", "")
        times = a.grow if name.endswith(f"x{a.grow}") else 1
        text_rows, video_rows, counts = greedy_pairs(cfg, *data[times], fallback)
        trained = train_pairs(cfg, sft_dir, text_rows, video_rows, d, cfg.seed, knobs)
        rewards, prompts, text = score(cfg, d / "model", d, dev, dev_text, judge, backend, a.seeds)
        row = {"variant": name, **counts, **trained, **knobs, "dev_reward": round(statistics.mean(rewards.values()), 4),
               "vs_sft": paired_gain(rewards, base["sft"][0]), "vs_profile": paired_gain(rewards, base[PROFILE][0]),
               "dev_changed": round(preference.changed_share(base["sft"][1], prompts), 3),
               "dev_text_pass": text["pass"], "dev_text_unsafe_harmful": text["unsafe_harmful"]}  # fmt: skip
        if not fallback:  # the pairs against the greedy prompt: how far one round moves them
            pairs = read_jsonl(d / "pairs.jsonl")[0]
            row["pairs_moved"] = moved(logprobs(cfg, sft_dir, pairs), logprobs(cfg, d / "model", pairs))
        out["rows"].append(row)
        print(json.dumps(row), flush=True)
        write_json(a.json, out)  # after every row: a long pass shows its progress
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
