"""How much data the preference stage needs, measured on the dev split (never the held-out set).

From a run's finished stage 04 (the SFT model's samples of the profile's sizes, their renders and verdicts), builds
the on-policy pair set of variants that change one size at a time: fewer queries, fewer samples per query, one
noise seed; and, grown here, more ShapesWorld queries (``queries x2``, ``x4``: fresh queries past the run's splits,
sampled, rendered and judged from the SFT model as 04 does) and four noise seeds (``seeds 4``: each sample
rendered with two more). Beside them, the profile's pairs trained with another DPO seed (training noise) and at
higher learning rates (what one round can move). Each variant trains one round from the SFT model as notebook
05's round 1 does (the profile's ``dpo`` section, its pair files written as 04 writes them) and is scored on every
ShapesWorld dev query with ``--seeds`` noise seeds, paired with SFT and with the profile's own sizes, and on the
real dev split (judge passes, harmful kept unsafe). One JSON row a variant (pairs, samples, videos, seconds),
written as each finishes, and a plot beside the JSON file.

    python scripts/dev_sizes.py --run-dir outputs/cpu-V --json docs/results/cpu/dev_sizes.json

Everything goes to RUN/dev_sizes/ and is resumable (models, prompts and renders are kept).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

from vpolib import examples, feedback, preference, refine, scoring, trainers, views
from vpolib.analysis import paired_gain
from vpolib.config import load_config
from vpolib.data import SPLIT_FIELDS, shapes_beyond
from vpolib.io import append_jsonl, read_jsonl
from vpolib.judge import build_judge
from vpolib.progress import track
from vpolib.run import parse_sets
from vpolib.video import make_video_backend

PROFILE = "profile"  # the row of the run's own sizes, which every variant is also compared with


def subset(scored: list[dict], logged: list[dict], ids: set[str], k: int, seeds: int) -> tuple[list, list]:
    """The scored videos and verdicts of queries ``ids``, samples below ``k`` and seed indices below ``seeds``."""
    videos = [v for v in scored if v["id"] in ids and v["k"] < k and v.get("seed_index", 0) < seeds]
    verdicts = [r for r in logged if r["query_id"] in ids and int(r["id"].rsplit(":sft", 1)[1]) < k]
    return videos, verdicts


def grow_queries(cfg, sft_dir: Path, n: int, out: Path, judge, backend) -> tuple[list[dict], list[dict]]:
    """``n`` fresh ShapesWorld queries (past every split) sampled, rendered and judged from the SFT model as 04
    samples round 1 (:func:`preference.collect_round`, resumable: a larger ``n`` later adds to what is there).
    Returns the queries and each collection's counts and seconds (``out/collected.jsonl``, one line a call)."""
    d = cfg.data
    fresh = [{k: r[k] for k in SPLIT_FIELDS if k in r} for r in
             shapes_beyond(d.shapes_sft + d.shapes_dpo + d.shapes_heldout, n, cfg.seed, d.max_query_chars)]  # fmt: skip
    log = out / "collected.jsonl"
    calls = read_jsonl(log)[0] if log.exists() else []
    if not any(c["queries"] >= n for c in calls):
        refiner = refine.RuleRefiner(cfg.judge.max_words)
        calls.append(preference.collect_round(cfg, sft_dir, fresh, [], out, 1, judge, refiner, backend))
        append_jsonl(log, calls[-1])
    return fresh, calls


def collection_seconds(calls: list[dict], n: int) -> dict:
    """The seconds :func:`grow_queries` spent until its first ``n`` fresh queries were collected."""
    upto = calls[: next(i for i, c in enumerate(calls) if c["queries"] >= n) + 1]
    return {k: round(sum(c["seconds"][k] for c in upto), 1) for k in upto[0]["seconds"]}


def more_seeds(cfg, stage04: Path, ids: set[str], seeds: int, out: Path, backend) -> tuple[list[dict], float]:
    """04's samples of ``ids`` rendered with ``seeds`` noise seeds (04's own renders copied first, so only the new
    seeds are written; the same keys as 04's, so seed s is 04's seed s): the scored videos and the seconds the
    rendering took (kept in ``out/seconds.json`` by the call that rendered, so a rerun reports them too)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("scores.jsonl", "checklists.jsonl"):
        if not (out / name).exists():
            shutil.copy(stage04 / name, out / name)
    rows = [r for r in read_jsonl(stage04 / "prompts.jsonl")[0] if r["id"] in ids]
    t0 = time.perf_counter()
    fb = cfg.feedback
    scored = scoring.render_and_score(rows, backend, out, cfg.seed, False, fb.render_batch, seeds, 1)
    if not (out / "seconds.json").exists():
        (out / "seconds.json").write_text(
            json.dumps({"rendering": round(time.perf_counter() - t0, 1)}) + "\n"
        )
    return [v for v in scored if v["id"] in ids], json.loads((out / "seconds.json").read_text())["rendering"]


def train(cfg, sft_dir: Path, videos: list[dict], verdicts: list[dict], out: Path, seed: int, knobs: dict):
    """The variant's pairs, made as 04 makes them, and one DPO round from SFT on them (:func:`train_pairs`)."""
    text_rows, _ = preference.text_pairs(verdicts, cfg.instruction)
    video_rows, _ = preference.video_pairs(
        videos, cfg.feedback.margin, cfg.feedback.video_rule, cfg.instruction
    )
    return train_pairs(cfg, sft_dir, text_rows, video_rows, out, seed, knobs)


def train_pairs(
    cfg, sft_dir, text_rows: list[dict], video_rows: list[dict], out: Path, seed: int, knobs: dict
):
    """Pair files in ``out`` (as 04 writes them) and one DPO round from SFT on them, as 05's round 1 trains (DPO's
    data order and initialisation from ``seed``, ``knobs`` over the profile's ``dpo.trainer``)."""
    dpo = dataclasses.replace(cfg.dpo, trainer={**cfg.dpo.trainer, **knobs})
    preference.write_round(out, text_rows, video_rows)
    # the run seed splits off the eval pairs, whatever DPO's seed
    rows, evaluation, _ = examples.variant_split(out, dpo.pairs, dpo, cfg.seed)
    info = trainers.train_stage(
        trainers.build_dpo_trainer, sft_dir, rows, evaluation, dpo, out / "model", seed
    )
    return {"text_pairs": len(text_rows), "video_pairs": len(video_rows), "train_pairs": len(rows),
            "steps": info["steps"], "train_s": info["train_s"]}  # fmt: skip


def score(cfg, model: Path, out: Path, dev: list[dict], dev_text: list[dict], judge, backend, seeds: int):
    """A model's greedy dev prompts (``out``, resumable) rendered with ``seeds`` noise seeds: per-query rewards,
    the prompts, and the real dev split's judge scores (:func:`preference.dev_text_scores`)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = (out / "dev_text_prompts.jsonl", out / "dev_text_judged.jsonl")
    got = preference.dev_reward(
        cfg, model, dev, backend, 0, out / "dev_prompts.jsonl", dev_text, judge, paths
    )
    rows = read_jsonl(out / "dev_prompts.jsonl")[0]
    return preference.dev_query_rewards(cfg, rows, backend, seeds), got["prompts"], got["text"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--json", type=Path, required=True, help="where the rows go")
    p.add_argument("--seeds", type=int, default=3, help="noise seeds per dev prompt")
    p.add_argument("--grow", type=int, nargs="+", default=[2, 4], help="ShapesWorld query multiples to try")
    p.add_argument("--rates", type=float, nargs="*", default=[3e-4, 1e-3], help="DPO learning rates to try")
    p.add_argument("--n-dev", type=int, help="the first N ShapesWorld dev queries (default: every one)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--plot-only", action="store_true", help="only draw the plot of an existing --json file")
    a = p.parse_args()
    if a.plot_only:
        return plot(json.loads(a.json.read_text())["rows"], a.json)
    profile = json.loads((a.run_dir / "manifest.json").read_text())["profile"]
    cfg = load_config(profile, parse_sets(a.set))
    fb, stage04, work = cfg.feedback, a.run_dir / "04_feedback", a.run_dir / "dev_sizes"
    sft_dir = a.run_dir / "03_sft" / "model"
    scored, logged = (
        read_jsonl(stage04 / "scores.jsonl")[0],
        read_jsonl(stage04 / "text_critique_log.jsonl")[0],
    )
    pool = read_jsonl(a.run_dir / "01_data" / "splits" / "dpo_pool.jsonl")[0]
    rendered, text_only, _ = feedback.feedback_queries(pool, fb)
    dev = preference.dev_queries(pool, fb, a.n_dev)
    dev_text = preference.dev_text_queries(pool, fb, cfg.dpo.n_dev_text)
    judge = build_judge(cfg, cache_dir=work / "cache")
    backend = make_video_backend(cfg)
    fresh, calls = grow_queries(
        cfg, sft_dir, (max(a.grow) - 1) * len(rendered), work / "extra", judge, backend
    )
    seeds4, seeds4_s = more_seeds(cfg, stage04, {r["id"] for r in rendered}, 4, work / "seeds4", backend)
    extra_scored = read_jsonl(work / "extra" / "scores.jsonl")[0]
    extra_logged = read_jsonl(work / "extra" / "text_critique_log.jsonl")[0]
    # each variant: its queries, samples per query, seeds, the data it reads, the seconds this script spent making
    # that data (None: 04 made it all) and DPO's seed (another one retrains the profile's data: training noise)
    base = {"rendered": [r["id"] for r in rendered], "text_only": [r["id"] for r in text_only],
            "k": fb.samples_per_query, "seeds": fb.reward_seeds, "scored": scored, "logged": logged,
            "data_s": None, "train_seed": cfg.seed, "knobs": {}}  # fmt: skip
    variants = {PROFILE: base, f"{PROFILE}, DPO seed {cfg.seed + 1}": {**base, "train_seed": cfg.seed + 1}}
    for n in (4, 2):
        variants[f"queries 1/{n}"] = {**base, "rendered": base["rendered"][: len(rendered) // n],
                                      "text_only": base["text_only"][: len(text_only) // n]}  # fmt: skip
    for times in a.grow:
        n = (times - 1) * len(rendered)
        variants[f"ShapesWorld queries x{times}"] = {
            **base, "rendered": base["rendered"] + [r["id"] for r in fresh[:n]], "scored": scored + extra_scored,
            "logged": logged + extra_logged, "data_s": collection_seconds(calls, n)}  # fmt: skip
    # what one round can move: the same pairs at a higher learning rate (the SFT stage's is 1e-3)
    for rate in a.rates:
        variants[f"{PROFILE}, DPO rate {rate:g}"] = {**base, "knobs": {"learning_rate": rate}}
    variants["samples 4"] = {**base, "k": 4}
    variants["seeds 1"] = {**base, "seeds": 1}
    variants["seeds 4"] = {**base, "seeds": 4, "scored": seeds4, "data_s": {"rendering": seeds4_s}}
    rewards, prompts = {}, {}
    rewards["sft"], prompts["sft"], text = score(
        cfg, sft_dir, work / "sft", dev, dev_text, judge, backend, a.seeds
    )
    rows = [{"variant": "sft", "dev_reward": round(sum(rewards["sft"].values()) / len(rewards["sft"]), 4),
             "dev_text_pass": text["pass"], "dev_text_unsafe_harmful": text["unsafe_harmful"]}]  # fmt: skip
    for name, v in track(variants.items(), desc="variants"):
        out = work / name.replace(" ", "_").replace("/", "_").replace(",", "")
        videos, verdicts = subset(
            v["scored"], v["logged"], {*v["rendered"], *v["text_only"]}, v["k"], v["seeds"]
        )
        trained = train(cfg, sft_dir, videos, verdicts, out, v["train_seed"], v["knobs"])
        rewards[name], prompts[name], text = score(
            cfg, out / "model", out, dev, dev_text, judge, backend, a.seeds
        )
        row = {"variant": name, "queries": len(v["rendered"]), "text_only": len(v["text_only"]), "k": v["k"],
               "seeds": v["seeds"], "samples": (len(v["rendered"]) + len(v["text_only"])) * v["k"],
               "videos": len(videos), **trained, "data_s": v["data_s"], "train_seed": v["train_seed"], **v["knobs"],
               "dev_reward": round(sum(rewards[name].values()) / len(rewards[name]), 4),
               "vs_sft": paired_gain(rewards[name], rewards["sft"]),
               "dev_changed": round(preference.changed_share(prompts["sft"], prompts[name]), 3),
               "dev_text_pass": text["pass"], "dev_text_unsafe_harmful": text["unsafe_harmful"]}  # fmt: skip
        if name != PROFILE and PROFILE in rewards:
            row["vs_profile"] = paired_gain(rewards[name], rewards[PROFILE])
        rows.append(row)
        print(json.dumps(row), flush=True)
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"run": a.run_dir.name, "n_dev": len(dev), "n_dev_text": len(dev_text),
                                      "seeds": a.seeds, "rows": rows}, indent=1) + "\n")  # fmt: skip
    plot(rows, a.json)


def plot(rows: list[dict], path: Path) -> None:
    """The rows' plot (:func:`vpolib.views.preference.plot_sizes`) beside their JSON file."""
    views.preference.plot_sizes(rows).savefig(path.with_suffix(".png"), dpi=100, bbox_inches="tight")
    print(f"wrote {path} and its plot, {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
