"""How much data the preference stage needs, measured on the dev split (never the held-out set).

From a finished stage 04 (its samples, renders and verdicts), builds the on-policy pair set of smaller variants:
fewer queries, fewer samples per query, one noise seed instead of the profile's; trains one DPO round from the SFT
model on each (the profile's dpo section) and scores it on the dev split as notebook 05 scores its rounds. The
full set is 05's round 1 (read, not retrained). Writes one JSON row per variant with its pairs, the videos and
samples its data took, its training seconds and its dev reward.

    python scripts/dev_sizes.py --run-dir outputs/cpu-D --json docs/results/cpu/dev_sizes.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from vpolib import examples, preference, trainers
from vpolib.config import load_config
from vpolib.io import read_jsonl
from vpolib.run import parse_sets
from vpolib.video import make_video_backend


def subset(scored: list[dict], logged: list[dict], ids: set[str], k: int, seeds: int):
    """The scored videos and verdicts of queries ``ids``, samples below ``k`` and seed indices below ``seeds``."""
    videos = [v for v in scored if v["id"] in ids and v["k"] < k and v.get("seed_index", 0) < seeds]
    verdicts = [r for r in logged if r["query_id"] in ids and int(r["id"].rsplit(":sft", 1)[1]) < k]
    return videos, verdicts


def variants(cfg, rendered: list[str], text_only: list[str]) -> dict[str, dict]:
    """Name -> (queries rendered, real text-only queries, samples, seeds): the profile's sizes, each cut alone."""
    fb, out = cfg.feedback, {}
    for share in (4, 2):
        n, m = len(rendered) // share, len(text_only) // share
        out[f"queries/{share}"] = {"rendered": rendered[:n], "text_only": text_only[:m], "k": fb.samples_per_query,
                                   "seeds": fb.reward_seeds}  # fmt: skip
    if fb.samples_per_query > 4:
        out["samples 4"] = {"rendered": rendered, "text_only": text_only, "k": 4, "seeds": fb.reward_seeds}
    if fb.reward_seeds > 1:
        out["seeds 1"] = {"rendered": rendered, "text_only": text_only, "k": fb.samples_per_query, "seeds": 1}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--profile", default="cpu")
    p.add_argument("--json", type=Path, required=True, help="where the rows go")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = p.parse_args()
    cfg = load_config(a.profile, parse_sets(a.set))
    fb, stage04, stage05 = cfg.feedback, a.run_dir / "04_feedback", a.run_dir / "05_dpo"
    scored, logged = (
        read_jsonl(stage04 / "scores.jsonl")[0],
        read_jsonl(stage04 / "text_critique_log.jsonl")[0],
    )
    pool = read_jsonl(a.run_dir / "01_data" / "splits" / "dpo_pool.jsonl")[0]
    rendered, text_only, _ = preference.feedback.feedback_queries(pool, fb)
    dev = preference.dev_queries(pool, fb, cfg.dpo.n_dev)
    backend = make_video_backend(cfg)
    rounds = json.loads((stage05 / "metrics.json").read_text())["rounds"]
    rows = [{"variant": "sft", "dev_reward": rounds[0]["dev_reward"]}]
    rows.append({"variant": "full (05's round 1)", "queries": len(rendered), "text_only": len(text_only),
                 "k": fb.samples_per_query, "seeds": fb.reward_seeds, "pairs": rounds[1]["train"] + rounds[1]["eval"],
                 "videos": len(rendered) * fb.samples_per_query * fb.reward_seeds,
                 "train_s": rounds[1]["train_s"], "dev_reward": rounds[1]["dev_reward"]})  # fmt: skip
    for name, v in variants(cfg, [r["id"] for r in rendered], [r["id"] for r in text_only]).items():
        ids = set(v["rendered"]) | set(v["text_only"])
        videos, verdicts = subset(scored, logged, ids, v["k"], v["seeds"])
        text_rows, _ = preference.text_pairs(verdicts, cfg.instruction)
        video_rows, _ = preference.video_pairs(videos, fb.margin, fb.video_rule, cfg.instruction)
        pairs, _ = examples.pair_examples(text_rows + video_rows, examples.PAIR_SETS[cfg.dpo.pairs])
        train, evaluation = examples.capped_split(pairs, cfg.dpo.eval_fraction, cfg.seed, cfg.dpo.max_pairs,
                                                  cfg.dpo.max_eval)  # fmt: skip
        out = a.run_dir / "dev_sizes" / name.replace(" ", "_").replace("/", "_")  # models stay in the run dir
        t0 = time.perf_counter()
        info = trainers.train_stage(trainers.build_dpo_trainer, stage05.parent / "03_sft" / "model", train,
                                    evaluation, cfg.dpo, out / "model", cfg.seed)  # fmt: skip
        dev_r = preference.dev_reward(
            cfg, out / "model", dev, backend, fb.reward_seeds, out / "dev_prompts.jsonl"
        )
        rows.append({"variant": name, "queries": len(v["rendered"]), "text_only": len(v["text_only"]), "k": v["k"],
                     "seeds": v["seeds"], "pairs": len(pairs), "videos": len(videos), "train_s": info["train_s"],
                     "seconds": round(time.perf_counter() - t0, 1), "dev_reward": round(dev_r["reward"], 4)})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"run": str(a.run_dir), "n_dev": len(dev), "rows": rows}, indent=1) + "\n")
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
