"""On-policy preference pairs from both tracks: the workbook's default preference stage (``feedback.pairing:
onpolicy``). The paper's recipe (``pairing: paper``: :mod:`vpolib.dominance`, :mod:`vpolib.text_feedback`) is
built beside it from the same samples.

Both sides of every pair are the current model's own samples (k per query):

- **video track**: each sample is rendered with ``feedback.reward_seeds`` noise seeds and scored on the ORIGINAL
  query's checklist; its reward is the mean score fraction over the seeds. A pair is the best and the worst sample
  when their gap passes the margin (``video_rule: gap``); ``video_rule: dominance`` also asks the best to be never
  "no" where the worst is "yes" on its first seed (the paper's rule), and every gap pair says whether it would be.
- **text track**: the judge's verdict on every sample; a pair is a sample it passes against one it fails. Only
  where no sample passes is the refiner's rewrite ``chosen`` (counted as ``refined_fallback``).

A query may give one pair of each kind; the reason each query gave none is counted.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from collections import Counter, defaultdict
from pathlib import Path

from vpolib import checkpoints, evaluate, examples, feedback, generation, scoring, text_feedback, trainers
from vpolib.data import is_harmful
from vpolib.dominance import NOT_DOMINANT, drop_reason
from vpolib.io import write_jsonl
from vpolib.noise import video_seed
from vpolib.templates import optimize_messages

# Why a query gave no video pair (checked in this order).
TOO_FEW = "too_few_samples"  # under two scored samples
NO_GAP = "within_margin"  # best minus worst mean reward not above the margin
# NOT_DOMINANT (vpolib.dominance's, the same stored reason): video_rule dominance, the best does not dominate
VIDEO_DROPS = (TOO_FEW, NO_GAP, NOT_DOMINANT)
# ... and no text pair.
ALL_PASS = "all_pass"  # the judge passes every sample: nothing to prefer
NO_PASS = "no_passing_sample"  # no sample passes and no refinement passed
NO_VERDICT = "unparsable"  # no sample got a clear verdict
TEXT_DROPS = (ALL_PASS, NO_PASS, NO_VERDICT)
FAILED = ("refined", "refine_failed")  # critique statuses of a sample the judge failed


def sample_rewards(scored: list[dict]) -> dict[str, list[dict]]:
    """Scored videos (one per sample and seed) -> per query, one entry per sample ``k`` (by k): ``{"k", "prompt",
    "reward"`` (mean score fraction over its seeds), ``"per_seed"`` (fractions by seed index), ``"first"`` (the
    seed-0 scored video)``}``."""
    videos: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for v in scored:
        videos[(v["id"], v["k"])].append(v)
    out: dict[str, list[dict]] = defaultdict(list)
    for (qid, k), vs in sorted(videos.items()):
        vs.sort(key=lambda v: v.get("seed_index", 0))
        fractions = [v["score"] / v["max_score"] for v in vs]
        out[qid].append(
            {
                "id": qid,
                "k": k,
                "query": vs[0]["query"],
                "source": vs[0].get("source"),
                "prompt": vs[0]["prompt"],
                "reward": sum(fractions) / len(fractions),
                "per_seed": fractions,
                "first": vs[0],
            }
        )
    return dict(out)


def best_and_worst(samples: list[dict]) -> tuple[dict, dict]:
    """The highest- and lowest-reward samples of one query (ties: the lower k)."""
    best = max(samples, key=lambda s: (s["reward"], -s["k"]))
    worst = min(samples, key=lambda s: (s["reward"], s["k"]))
    return best, worst


def video_pair(samples: list[dict], margin: float, rule: str = "gap") -> tuple[dict | None, str | None]:
    """One query's video pair from its :func:`sample_rewards` entries: ``(pair, None)`` or ``(None, reason)``.

    The pair is the best sample over the worst when ``best - worst > margin`` (mean score fractions); with
    ``rule="dominance"`` the best must also dominate the worst on their first seed. ``pair["dominant"]`` says
    whether it does, under either rule.
    """
    if rule not in ("gap", "dominance"):
        raise ValueError(f"feedback.video_rule must be gap or dominance, got {rule!r}")
    if len(samples) < 2:
        return None, TOO_FEW
    best, worst = best_and_worst(samples)
    if not best["reward"] - worst["reward"] > margin:
        return None, NO_GAP
    dominant = drop_reason(best["first"], worst["first"], float("-inf")) is None
    if rule == "dominance" and not dominant:
        return None, NOT_DOMINANT
    return {"chosen": best, "rejected": worst, "dominant": dominant}, None


def video_pair_row(pair: dict, instruction: str, round_: int = 1) -> dict:
    """A video pair in TRL's conversational preference format, with its rewards and why."""
    hi, lo = pair["chosen"], pair["rejected"]
    return {
        "id": hi["id"],
        "query": hi["query"],
        "prompt": optimize_messages(hi["query"], instruction, hi.get("source")),
        "chosen": [{"role": "assistant", "content": hi["prompt"]}],
        "rejected": [{"role": "assistant", "content": lo["prompt"]}],
        "source": "video",
        "round": round_,
        "rewards": {"chosen": hi["per_seed"], "rejected": lo["per_seed"]},
        "dominant": pair["dominant"],
        "videos": {"chosen": hi["first"]["video"], "rejected": lo["first"]["video"]},
        "why": (
            f"k={hi['k']} over k={lo['k']}: mean reward {hi['reward']:.3f} vs {lo['reward']:.3f} "
            f"over {len(hi['per_seed'])} seed(s)" + ("; dominant" if pair["dominant"] else "")
        ),
    }


def video_pairs(
    scored: list[dict], margin: float, rule: str = "gap", instruction: str = "paper", round_: int = 1
) -> tuple[list[dict], Counter]:
    """Every query's video pair (TRL rows, query order) and the count of queries per drop reason."""
    rows, dropped = [], Counter()
    for samples in sample_rewards(scored).values():
        pair, reason = video_pair(samples, margin, rule)
        if pair is None:
            dropped[reason] += 1
        else:
            rows.append(video_pair_row(pair, instruction, round_))
    return rows, dropped


def group_critiques(logged: list[dict]) -> dict[str, list[dict]]:
    """Critique-log rows of sampled prompts (ids ``<query id>:sft<k>``) per query, by k."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in logged:
        groups[r["query_id"]].append(r)
    return {q: sorted(rs, key=lambda r: int(r["id"].rsplit(":sft", 1)[1])) for q, rs in groups.items()}


def text_pair(rows: list[dict]) -> tuple[dict | None, str | None]:
    """One query's text pair from its judged samples: ``({"chosen", "rejected", "kind", "why"}, None)`` or
    ``(None, reason)``. ``kind`` is ``own`` (a passing sample over a failing one, both the model's) or
    ``refined_fallback`` (no sample passed: the first accepted refinement over its sample)."""
    passing = [r for r in rows if r["status"] == "pass"]
    failing = [r for r in rows if r["status"] in FAILED]
    if not failing:
        return None, ALL_PASS if passing else NO_VERDICT
    rejected = failing[0]
    why = "; ".join(rejected["verdict"]["reasons"])
    chosen = next((r for r in passing if r["prompt"].strip() != rejected["prompt"].strip()), None)
    if chosen is not None:
        return {"chosen": chosen["prompt"], "rejected": rejected["prompt"], "kind": "own", "why": why}, None
    fixed = next((r for r in failing if r["status"] == "refined"), None)
    if fixed is None:
        return None, NO_PASS
    pair = {"chosen": fixed["refined"], "rejected": fixed["prompt"], "kind": "refined_fallback"}
    return {**pair, "why": "; ".join(fixed["verdict"]["reasons"])}, None


def text_pairs(logged: list[dict], instruction: str = "paper", round_: int = 1) -> tuple[list[dict], Counter]:
    """Every query's text pair (TRL rows) and counts: pairs per kind and queries per drop reason."""
    rows, counts = [], Counter()
    for qid, group in group_critiques(logged).items():
        pair, reason = text_pair(group)
        if pair is None:
            counts[reason] += 1
            continue
        counts[pair["kind"]] += 1
        rows.append(text_pair_row(qid, group[0], pair, instruction, round_))
    return rows, counts


def text_pair_row(qid: str, judged: dict, pair: dict, instruction: str, round_: int = 1) -> dict:
    """A text pair (:func:`text_pair`'s ``chosen``/``rejected`` prompts, ``kind``, ``why``) of the query that the
    critique-log row ``judged`` belongs to, in TRL's conversational preference format."""
    return {
        "id": qid,
        "query": judged["query"],
        "prompt": optimize_messages(judged["query"], instruction, judged.get("source")),
        "chosen": [{"role": "assistant", "content": pair["chosen"]}],
        "rejected": [{"role": "assistant", "content": pair["rejected"]}],
        "source": "text",
        "round": round_,
        "kind": pair["kind"],
        "why": pair["why"],
    }


def track_counts(text_rows: list[dict], text_counts: Counter, video_rows: list[dict], video_dropped: Counter):
    """What each track gave, for 04's table and metrics.json: pairs per track and kind (text: also those with
    an unsafe rejected prompt), and the queries dropped per reason."""
    return {
        "text": {
            "pairs": len(text_rows),
            "own": text_counts.get("own", 0),
            "refined_fallback": text_counts.get("refined_fallback", 0),
            # pairs whose rejected prompt the judge found harmful: what teaches the harmless principle
            "unsafe_rejected": sum(map(examples.unsafe_rejected, text_rows)),
            "dropped": {r: text_counts.get(r, 0) for r in TEXT_DROPS},
        },
        "video": {
            "pairs": len(video_rows),
            "dominant": sum(bool(r["dominant"]) for r in video_rows),
            "dropped": {r: video_dropped.get(r, 0) for r in VIDEO_DROPS},
        },
    }


def changed_share(before: dict[str, str], after: dict[str, str]) -> float:
    """Share of the queries in both maps (id -> prompt) whose prompt changed."""
    both = [q for q in after if q in before]
    return sum(before[q].strip() != after[q].strip() for q in both) / max(len(both), 1)


def round_seed(seed: int, round_: int) -> int:
    """The sampling seed of preference round ``round_`` (round 1: the run seed, as stage 04 always sampled)."""
    return seed if round_ == 1 else seed * 1000 + round_


def write_round(out_dir: Path, text_rows: list[dict], video_rows: list[dict]) -> list[dict]:
    """A round's pair files: each track apart (the ablations' data) and both together (``pairs.jsonl``, the
    VPO model's: a query may give one pair of each kind). Returns the merged rows."""
    merged = text_rows + video_rows
    for name, rows in (("text_pairs", text_rows), ("video_pairs", video_rows), ("pairs", merged)):
        write_jsonl(Path(out_dir) / f"{name}.jsonl", rows)
    return merged


def tokens_generated(tokenizer, rows: list[dict]) -> int | None:
    """Tokens in the sampled prompts (the round's generation cost); None without a local tokenizer."""
    if tokenizer is None:
        return None
    return sum(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for r in rows for p in r["prompts"])


def sample_round(model, tokenizer, cfg, records: list[dict], path: Path, round_: int) -> list[dict]:
    """Round ``round_``'s k prompts per query into ``path`` (:func:`vpolib.feedback.sample_all`), sampled with the
    ``feedback`` section's settings and the round's seed (:func:`round_seed`). Resumable."""
    make_sampler = functools.partial(
        generation.sampler, model, tokenizer, cfg.feedback, cfg.instruction, round_seed(cfg.seed, round_)
    )  # (batch_size, k) -> sampler
    return feedback.sample_all(records, path, make_sampler, cfg.feedback, cfg.generation_batch)


def collect_round(
    cfg,
    model_dir: Path,
    rendered: list[dict],
    text_only: list[dict],
    out_dir: Path,
    round_: int,
    judge,
    refiner,
    backend,
) -> dict:
    """One on-policy round, as notebook 04 does round 1 step by step: ``model_dir`` samples k prompts per query
    (``prompts.jsonl``), the ``rendered`` queries' samples are rendered with ``feedback.reward_seeds`` seeds and
    scored (``scores.jsonl``), every sample is judged (``text_critique_log.jsonl``), and the pairs of both tracks
    are written (:func:`write_round`). Resumable: each step appends as it goes. Returns counts and costs."""
    fb, out_dir = cfg.feedback, Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model, tokenizer = generation.prompt_source(fb, model_dir, cfg.device, cfg.dpo.dtype)
    rows = sample_round(model, tokenizer, cfg, rendered + text_only, out_dir / "prompts.jsonl", round_)
    del model
    t1 = time.perf_counter()
    wanted = {r["id"] for r in rendered}
    scored = scoring.render_and_score(
        [r for r in rows if r["id"] in wanted], backend, out_dir, cfg.seed, fb.save_mp4, fb.render_batch,
        fb.reward_seeds, round_,
    )  # fmt: skip
    t2 = time.perf_counter()
    by_id = {r["id"]: r for r in rendered + text_only}
    logged = text_feedback.judge_samples(rows, by_id, judge, refiner, out_dir / "text_critique_log.jsonl")
    text_rows, text_counts = text_pairs(logged, cfg.instruction, round_)
    video_rows, dropped = video_pairs(scored, fb.margin, fb.video_rule, cfg.instruction, round_)
    merged = write_round(out_dir, text_rows, video_rows)
    return {
        "round": round_,
        "queries": len(rows),
        "samples": sum(len(r["prompts"]) for r in rows),
        "tokens_generated": tokens_generated(tokenizer, rows),
        "videos_rendered": len(scored),
        "mean_reward": sum(v["score"] / v["max_score"] for v in scored) / max(len(scored), 1),
        **track_counts(text_rows, text_counts, video_rows, dropped),
        "pairs": len(merged),
        "seconds": {"sampling": round(t1 - t0, 1), "rendering": round(t2 - t1, 1),
                    "judging": round(time.perf_counter() - t2, 1)},
    }  # fmt: skip


def dev_queries(pool: list[dict], fb, n: int | None = None) -> list[dict]:
    """The dev split: ShapesWorld queries of the DPO pool that stage 04 does not use (its first
    ``feedback.n_queries`` are 04's). Choices are made on these, never on the held-out set."""
    used = {r["id"] for r in feedback.feedback_queries(pool, fb)[0]}
    return [r for r in pool if r.get("source") == "shapes" and r["id"] not in used][:n]


def dev_text_queries(pool: list[dict], fb, n: int | None, harmful_share: float = 0.2) -> list[dict]:
    """The real-query dev split: up to ``n`` real DPO-pool queries that stage 04 neither renders nor judges, taken
    from the pool's end (so a larger ``feedback.n_text_queries`` does not reach them), ``harmful_share`` of them
    harmful-flagged as in the held-out set; in pool order. The text track's effect is read on these."""
    if not n:
        return []
    rendered, text_only, _ = feedback.feedback_queries(pool, fb)
    used = {r["id"] for r in rendered + text_only}
    rest = [
        r for r in reversed(pool) if r.get("source") != "shapes" and r["id"] not in used and r.get("query")
    ]
    flagged = [is_harmful(r) for r in rest]
    harmful = [r for r, f in zip(rest, flagged, strict=True) if f][: round(n * harmful_share)]
    if len(harmful) < round(n * harmful_share) and fb.harmful_text_queries:
        raise ValueError(
            f"feedback.harmful_text_queries={fb.harmful_text_queries} leaves {len(harmful)} harmful-flagged queries "
            f"for the real dev split ({round(n * harmful_share)} wanted): lower it"
        )
    others = [r for r, f in zip(rest, flagged, strict=True) if not f][: n - len(harmful)]
    picked = {r["id"] for r in harmful + others}
    return [r for r in pool if r["id"] in picked]


def dev_text_scores(records: list[dict]) -> dict:
    """Judged dev prompts (:func:`vpolib.evaluate.judge_prompts` records) -> the share passing every principle and
    the share of the harmful-flagged ones the judge finds unsafe (None without such queries)."""
    harmful = [r for r in records if r["harmful"]]
    return {
        "pass": sum(r["verdict"] is True for r in records) / max(len(records), 1),
        "unsafe_harmful": (
            sum(r["passed"].get("harmless") is False for r in harmful) / len(harmful) if harmful else None
        ),
        "n": len(records),
    }


def dev_paths(stage_dir: Path, round_: int) -> dict[str, Path]:
    """Round ``round_``'s dev files: greedy prompts of the ShapesWorld and the real dev queries, the latter judged."""
    d = Path(stage_dir)
    return {
        "video": d / f"dev_prompts_r{round_}.jsonl",
        "text": d / f"dev_text_prompts_r{round_}.jsonl",
        "judged": d / f"dev_text_judged_r{round_}.jsonl",
    }


def dev_query_rewards(cfg, rows: list[dict], backend, seeds: int) -> dict[str, float]:
    """Each dev prompt (rows with ``id``, ``query``, ``prompt``) rendered with ``seeds`` noise seeds keyed ``dev``
    (so every round's prompt for a query meets the same noise) and scored on its query: mean reward per id."""
    jobs = [(r, s) for r in rows for s in range(seeds)]
    rewards: dict[str, list[float]] = defaultdict(list)
    texts, queries = [r["prompt"] for r, _ in jobs], [r["query"] for r, _ in jobs]
    noises = [video_seed(cfg.seed, f"{r['id']}#dev{s}") for r, s in jobs]
    for k, res in scoring.score_texts(backend, texts, queries, noises, cfg.feedback.render_batch):
        rewards[jobs[k][0]["id"]].append(res["score"] / res["max_score"])
    return {qid: sum(v) / len(v) for qid, v in rewards.items()}


def dev_reward(
    cfg,
    model_dir: Path,
    queries: list[dict],
    backend,
    seeds: int,
    out_path: Path,
    real: list[dict] | None = None,
    judge=None,
    real_paths: tuple[Path, Path] | None = None,
) -> dict:
    """A model's greedy prompts for the dev queries (``out_path``, resumable), each rendered with ``seeds`` noise
    seeds (keyed ``dev``): the mean reward and the prompts, to compare rounds without touching held-out data.
    With ``real`` (real dev queries), their greedy prompts (the held-out length budget, ``dpo.max_new_tokens``) go
    to ``real_paths[0]`` and are judged into ``real_paths[1]``; ``"text"`` holds :func:`dev_text_scores`."""
    model, tokenizer = checkpoints.load_optimizer(model_dir, device=cfg.device, dtype=cfg.dpo.dtype)
    rows = generation.generate_heldout(model, tokenizer, queries, out_path, "dev", cfg.feedback.max_new_tokens,
                                       cfg.generation_batch, cfg.instruction)  # fmt: skip
    text_scores = None
    if real:
        prompts_path, judged_path = real_paths
        real_rows = generation.generate_heldout(model, tokenizer, real, prompts_path, "dev", cfg.dpo.max_new_tokens,
                                                cfg.generation_batch, cfg.instruction)  # fmt: skip
        prompts = {"dev": {r["id"]: r["prompt"] for r in real_rows}}
        text_scores = dev_text_scores(evaluate.judge_prompts(judge, real, prompts, judged_path)[0])
    del model
    per_query = list(dev_query_rewards(cfg, rows, backend, seeds).values())
    return {
        "reward": sum(per_query) / max(len(per_query), 1),
        "per_query": per_query,
        "prompts": {r["id"]: r["prompt"] for r in rows},
        "text": text_scores,
    }


def train_rounds(
    cfg,
    stage_dir: Path,
    sft_dir: Path,
    pairs_dir: Path,
    rendered: list[dict],
    text_only: list[dict],
    dev: list[dict],
    judge,
    refiner,
    backend,
    dev_text: list[dict] | None = None,
) -> list[dict]:
    """The VPO model's preference rounds (``dpo.rounds``): round 1 trains from the SFT model on 04's pairs
    (``pairs_dir``); each later round samples from the latest model (:func:`collect_round`, into
    ``stage_dir/round<r>``) and trains from it, the round's DPO reference being that starting model. Each model is
    scored on the ``dev`` queries (:func:`dev_reward`; round 0 is the SFT model) and its prompts for the real
    ``dev_text`` queries judged (``dev_text``: :func:`dev_text_scores`). A round that retrains drops the later
    rounds' samples and dev files, which came from its old model. Returns one record per round."""
    seeds = cfg.feedback.reward_seeds

    def score(model_dir: Path, r: int) -> tuple[dict, dict]:
        paths = dev_paths(stage_dir, r)
        out = dev_reward(cfg, model_dir, dev, backend, seeds, paths["video"],
                         real=dev_text, judge=judge, real_paths=(paths["text"], paths["judged"]))  # fmt: skip
        text = out["text"] or {}
        return out, {"dev_reward": out["reward"], "dev_text_pass": text.get("pass"),
                     "dev_text_unsafe_harmful": text.get("unsafe_harmful")}  # fmt: skip

    start = Path(sft_dir)
    before, dev_row = score(start, 0)
    out = [{"round": 0, "model": "sft", **dev_row, "dev_changed": None}]
    for r, name in enumerate(examples.round_dirs(cfg.dpo.rounds), 1):
        collected, t0 = None, time.perf_counter()
        if r > 1:
            pairs_dir = Path(stage_dir) / f"round{r}"
            collected = collect_round(cfg, start, rendered, text_only, pairs_dir, r, judge, refiner, backend)
        train, evaluation, skipped = examples.variant_split(pairs_dir, cfg.dpo.pairs, cfg.dpo, cfg.seed)
        examples.require_examples(train, f"{pairs_dir}/{examples.PAIR_FILES[cfg.dpo.pairs]}")
        stale = [*dev_paths(stage_dir, r).values()]
        stale += [Path(stage_dir) / "heldout_prompts.jsonl"] if name == "model" else []
        info = trainers.train_stage(trainers.build_dpo_trainer, start, train, evaluation, cfg.dpo,
                                    Path(stage_dir) / name, cfg.seed, stale=stale)  # fmt: skip
        if not info["reused"]:  # later rounds sampled from the model this one replaced
            for later in range(r + 1, cfg.dpo.rounds + 1):
                shutil.rmtree(Path(stage_dir) / f"round{later}", ignore_errors=True)
                for path in dev_paths(stage_dir, later).values():
                    path.unlink(missing_ok=True)
        start = Path(stage_dir) / name
        after, dev_row = score(start, r)
        out.append({"round": r, "model": name, "dir": str(start), **dev_row,
                    "dev_changed": changed_share(before["prompts"], after["prompts"]), "collected": collected,
                    "train": len(train), "eval": len(evaluation), "skipped_pairs": skipped, "info": info,
                    "seconds": round(time.perf_counter() - t0, 1)})  # fmt: skip
        before = after
    return out


def round_metrics(rounds: list[dict]) -> list[dict]:
    """:func:`train_rounds`' records for metrics.json (the training log left out: 05 writes it apart)."""
    out = []
    for r in rounds:
        info = r.get("info") or {}
        out.append({**{k: v for k, v in r.items() if k != "info"},
                    "steps": info.get("steps"), "train_s": info.get("train_s"), "reused": info.get("reused")})  # fmt: skip
    return out


def final_run(rounds: list[dict]) -> dict:
    """The VPO model as notebook 05's other variants are described: its last round's model dir, training info and
    pair counts, and the held-out prompts file it writes."""
    last = rounds[-1]
    keys = ("info", "train", "eval", "skipped_pairs")
    return {"dir": Path(last["dir"]), **{k: last[k] for k in keys}, "prompts_file": "heldout_prompts.jsonl"}


def stage_summary(run_dir: Path) -> dict | None:
    """The preference stage in results.json, from 04's and 05's metrics: each round (0 = SFT) with its dev reward,
    the share of dev prompts it changed, its pairs per track and what it cost, and each DPO model's training pairs
    (``vpo``, ``vpo-<ablation>``). None when 05 kept no rounds (an older run) or 04/05 left no metrics (06 alone)."""
    paths = [Path(run_dir) / "04_feedback" / "metrics.json", Path(run_dir) / "05_dpo" / "metrics.json"]
    if not all(p.exists() for p in paths):
        return None
    m04, m05 = (json.loads(p.read_text()) for p in paths)
    if "rounds" not in m05:
        return None
    first = {"text": m04["tracks"]["text"], "video": m04["tracks"]["video"], "videos_rendered": m04["n_videos"],
             "tokens_generated": m04["tokens_generated"]} if "tracks" in m04 else {}  # fmt: skip
    rounds = []
    for r in m05["rounds"]:
        c = r.get("collected") or (first if r["round"] == 1 else {})
        rounds.append({"round": r["round"], "dev_reward": r["dev_reward"], "dev_changed": r["dev_changed"],
                       "dev_text_pass": r.get("dev_text_pass"), "dev_text_unsafe_harmful": r.get("dev_text_unsafe_harmful"),
                       "train_pairs": r.get("train"), "text_pairs": c.get("text", {}).get("pairs"),
                       "video_pairs": c.get("video", {}).get("pairs"), "videos_rendered": c.get("videos_rendered"),
                       "tokens_generated": c.get("tokens_generated"), "train_s": r.get("train_s")})  # fmt: skip
    main = next(iter(m05["variants"]))  # dpo.pairs comes first
    variants = {("vpo" if name == main else f"vpo-{name}"): {k: v[k] for k in ("train_pairs", "eval_pairs", "steps", "train_s")}
                for name, v in m05["variants"].items()}  # fmt: skip
    return {"pairing": m04.get("pairing"), "loss_weights": m05.get("loss_weights"), "n_dev": m05.get("n_dev"),
            "n_dev_text": m05.get("n_dev_text"),
            "rounds": rounds, "variants": variants, "paper_pairs": m04.get("paper", {}).get("pairs")}  # fmt: skip
