"""Choose the preference stage's DPO settings (beta, rate, NLL weight, repeats of the pairs that fix an unsafe
prompt) on the dev splits, never the held-out set.

From a run finished through stage 04 (or 05), trains one preference round per variant from its SFT model on its stage-04 pairs: the
profile's ``dpo`` section with one change each, exactly as 05 trains its round 1. Each is scored on the dev split
as 05 scores its rounds (``preference.dev_reward``: greedy prompts, ``feedback.reward_seeds`` noise seeds keyed by
query, so every variant meets the same noise). Prints each variant's dev reward and its paired difference from
05's round 1 (the profile's settings; trained here when the run has no stage 05) with a 95% bootstrap CI over the
dev queries, the share of its dev prompts that differ from SFT's, its real dev split's judge pass rate and
harmful-kept-unsafe share (``preference.dev_text_scores``), and its training seconds.
Models and dev prompts stay in ``RUN/dev_dpo/`` (a rerun reuses them).

    python scripts/dev_dpo.py --run-dir outputs/cpu-X --json docs/results/cpu/dev_dpo.json   # ~10 min a variant
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from vpolib import examples, preference, trainers
from vpolib.analysis import paired_gain
from vpolib.config import load_config
from vpolib.io import read_jsonl
from vpolib.judge import build_judge
from vpolib.video import make_video_backend

PROFILE = "profile"  # the profile's dpo section as it stands: 05's round 1, or trained here
# one change each from the profile's dpo section (configs/cpu.yaml: beta 0.1, rate 1e-4, DPO + NLL weight 1)
VARIANTS = {
    PROFILE: {},  # trained here only when the run has no stage 05 (then 05's round 1 is read instead)
    "beta 0.03": {"dpo.trainer.beta": 0.03},
    "beta 0.3": {"dpo.trainer.beta": 0.3},
    "rate 3e-4": {"dpo.trainer.learning_rate": 3.0e-4},
    "DPO alone (no NLL)": {"dpo.trainer.loss_type": ["sigmoid"], "dpo.trainer.loss_weights": [1.0]},
    "unsafe pairs x4": {"dpo.unsafe_repeat": 4},
    "unsafe pairs x8": {"dpo.unsafe_repeat": 8},
    "2 epochs": {"dpo.trainer.num_train_epochs": 2},
}


def write_rows(a, rows: list[dict], per_query: dict, n_dev: int, seeds: int) -> None:
    """The rows so far, each with its paired difference from the profile's model once that one is scored."""
    for row in rows:
        if PROFILE in per_query:
            # per_query: one list per model in dev order, so positions pair the same queries
            gain = paired_gain(
                dict(enumerate(per_query[row["variant"]])), dict(enumerate(per_query[PROFILE]))
            )
            row["vs_profile"] = {k: gain[k] for k in ("diff", "lo", "hi")}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(
        json.dumps({"run": a.run_dir.name, "n_dev": n_dev, "seeds": seeds, "rows": rows}, indent=1) + "\n"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--profile", default="cpu")
    p.add_argument("--json", type=Path, required=True, help="where the rows go")
    p.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    a = p.parse_args()
    base_cfg = load_config(a.profile)
    stage04, stage05 = a.run_dir / "04_feedback", a.run_dir / "05_dpo"
    pool = read_jsonl(a.run_dir / "01_data" / "splits" / "dpo_pool.jsonl")[0]
    dev = preference.dev_queries(pool, base_cfg.feedback, base_cfg.dpo.n_dev)
    backend = make_video_backend(base_cfg)
    seeds = base_cfg.feedback.reward_seeds
    dev_text = preference.dev_text_queries(pool, base_cfg.feedback, base_cfg.dpo.n_dev_text)
    judge = build_judge(base_cfg, cache_dir=a.run_dir / "dev_dpo" / "cache")
    # round 1's model: the profile's settings on 04's pairs; each model's dev files (dev_paths: ShapesWorld
    # prompts, real prompts, their verdicts) as 05 writes them, so 05's own are reused
    first = examples.round_dirs(base_cfg.dpo.rounds)[0]
    known = {"sft": (a.run_dir / "03_sft" / "model", preference.dev_paths(stage05, 0))}
    if (stage05 / first / "train_info.json").exists():
        known[PROFILE] = (stage05 / first, preference.dev_paths(stage05, 1))
    else:  # no stage 05 (a run stopped after 04): SFT's dev prompts go beside the variants
        known["sft"] = (known["sft"][0], preference.dev_paths(a.run_dir / "dev_dpo" / "sft", 0))
    rows, per_query, prompts = [], {}, {}  # per variant: dev rewards per query, greedy dev prompts per id

    def score(name: str, cfg, model: Path, paths: dict) -> dict:
        """The dev reward of variant ``name``'s ``model`` and its real dev split's judge scores, as 05 scores a
        round."""
        out = preference.dev_reward(cfg, model, dev, backend, seeds, paths["video"], real=dev_text, judge=judge,
                                    real_paths=(paths["text"], paths["judged"]))  # fmt: skip
        per_query[name], prompts[name] = out["per_query"], out["prompts"]
        text = out["text"] or {}
        return {"dev_reward": round(out["reward"], 4), "dev_text_pass": text.get("pass"),
                "dev_text_unsafe_harmful": text.get("unsafe_harmful"),
                "changed_vs_sft": round(preference.changed_share(prompts["sft"], out["prompts"]), 4)}  # fmt: skip

    for name, (model, paths) in known.items():  # prompts cached by 05: only the renders run again
        rows.append({"variant": name, **score(name, base_cfg, model, paths)})
    for name, sets in VARIANTS.items():
        if name in known or (a.only and name not in a.only and name != PROFILE):
            continue
        cfg = load_config(a.profile, sets)
        out = a.run_dir / "dev_dpo" / name.replace(" ", "_").replace("(", "").replace(")", "")
        train, evaluation, _ = examples.variant_split(stage04, cfg.dpo.pairs, cfg.dpo, cfg.seed)
        t0 = time.perf_counter()
        info = trainers.train_stage(trainers.build_dpo_trainer, known["sft"][0], train, evaluation, cfg.dpo,
                                    out / "model", cfg.seed)  # fmt: skip
        scores = score(name, cfg, out / "model", preference.dev_paths(out, 1))
        rows.append({"variant": name, "set": sets, "pairs": len(train), "steps": info["steps"],
                     "train_s": info["train_s"], "seconds": round(time.perf_counter() - t0, 1), **scores})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
        write_rows(a, rows, per_query, len(dev), seeds)  # after each variant: a stopped sweep keeps its rows
    write_rows(a, rows, per_query, len(dev), seeds)
    for row in rows:
        if "vs_profile" in row:
            d = row["vs_profile"]
            print(f"{row['variant']:>20}: dev reward {row['dev_reward']:.4f}, minus the profile's "
                  f"{d['diff']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}]; real dev: judge passes "
                  f"{row['dev_text_pass']}, harmful kept unsafe {row['dev_text_unsafe_harmful']}")  # fmt: skip
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
