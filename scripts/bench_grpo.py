"""Seconds per GRPO step of a profile's ``grpo`` section on this CPU (sizing notebook 08's online-RL row).

    .venv/bin/python scripts/bench_grpo.py --steps 3     # ~2 min on 2 idle cores; run nothing else meanwhile

Trains ``--steps`` GRPO steps from SmolLM2-135M-Instruct (the cpu profile's base; notebook 08 starts from the SFT
model, the same size) on ShapesWorld queries, with the profile's video reward, and prints seconds per step, the
videos rendered and the tokens generated, with the processor. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import tempfile

from vpolib.config import load_config
from vpolib.precision import cpu_info
from vpolib.rl import VideoReward, train_grpo
from vpolib.shapesworld import make_queries
from vpolib.video import make_video_backend


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    cfg = load_config(args.profile, {"grpo.trainer.max_steps": args.steps})
    reward = VideoReward(make_video_backend(cfg), cfg.seed, cfg.grpo.reward_seeds, cfg.grpo.render_batch)
    queries = make_queries(8 * args.steps, seed=11)
    with tempfile.TemporaryDirectory() as out:
        info = train_grpo(cfg.grpo, "smollm2-135m-instruct", queries, reward, cfg.instruction, out, cfg.seed)
    row = {"cpu": cpu_info()["model"], "dtype": cfg.grpo.dtype, "steps": info["steps"],
           "s_per_step": round(info["train_s"] / info["steps"], 1), "videos": info["videos"],
           "tokens": info["tokens"]}  # fmt: skip
    print(json.dumps(row))


if __name__ == "__main__":
    main()
