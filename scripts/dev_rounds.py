"""Paired dev-split differences between a finished run's preference rounds (round 0 = SFT), with bootstrap CIs.

    .venv/bin/python scripts/dev_rounds.py --run-dir outputs/cpu-T [--json docs/results/cpu/dev_rounds.json]

Re-renders every round's greedy dev prompts (05_dpo/dev_prompts_r<r>.jsonl) with the dev noise seeds that stage 05
used, so each round's mean matches the dev reward in 05's metrics.json, and prints each round minus the round before
and minus SFT over the same queries. Dev queries only: nothing here reads held-out data.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vpolib import preference
from vpolib.analysis import paired_gain
from vpolib.config import load_config
from vpolib.io import read_jsonl
from vpolib.video import make_video_backend


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--json", type=Path, help="also write the rows here")
    a = p.parse_args()
    stage = a.run_dir / "05_dpo"
    cfg = load_config(json.loads((a.run_dir / "manifest.json").read_text())["profile"])
    metrics = json.loads((stage / "metrics.json").read_text())
    backend = make_video_backend(cfg)
    rewards, rows = [], []
    for r in metrics["rounds"]:
        prompts = read_jsonl(preference.dev_paths(stage, r["round"])["video"])[0]
        rewards.append(preference.dev_query_rewards(cfg, prompts, backend, cfg.feedback.reward_seeds))
        mean = sum(rewards[-1].values()) / len(rewards[-1])
        row = {"round": r["round"], "dev_reward": round(mean, 4), "in_metrics": round(r["dev_reward"], 4)}
        if r["round"] > 0:
            row |= {
                "vs_previous": paired_gain(rewards[-1], rewards[-2]),
                "vs_sft": paired_gain(rewards[-1], rewards[0]),
            }
        rows.append(row)
        print(json.dumps(row), flush=True)
    if a.json:
        a.json.write_text(
            json.dumps({"run": a.run_dir.name, "seeds": cfg.feedback.reward_seeds, "rows": rows}, indent=1)
            + "\n"
        )


if __name__ == "__main__":
    main()
