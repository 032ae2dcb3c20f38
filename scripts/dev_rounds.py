"""Paired dev-split differences between a finished run's preference rounds (round 0 = SFT), with bootstrap CIs.

    .venv/bin/python scripts/dev_rounds.py --run-dir outputs/cpu-T [--json docs/results/cpu/dev_rounds.json]
    .venv/bin/python scripts/dev_rounds.py --run-dir outputs/cpu-T --all-dev --seeds 3 --out /tmp/dev-all

Re-renders every round's greedy dev prompts (05_dpo/dev_prompts_r<r>.jsonl) with the dev noise seeds that stage 05
used, so each round's mean matches the dev reward in 05's metrics.json, and prints each round minus the round before
and minus SFT over the same queries. ``--all-dev`` scores every ShapesWorld dev query of the DPO pool (cpu: 272, 05
scores the first ``dpo.n_dev``): each round's model (``05_dpo/model_r<r>``, the last round's ``05_dpo/model``, SFT's
``03_sft/model``) writes the prompts 05 did not, into copies of 05's files under ``--out``. ``--seeds``: noise seeds
per prompt (the first ones are 05's). ``--extra NAME=DIR``: also score the model in ``DIR/model`` (a variant that
``scripts/dev_dpo.py`` trained in place of round 1, e.g. ``outputs/cpu-T/dev_dpo/unsafe_pairs_x8``), against round 1
and SFT; its prompt file ``DIR/dev_prompts_r1.jsonl`` is completed under ``--out`` as the rounds' are. Dev queries
only: nothing here reads held-out data.

    .venv/bin/python scripts/dev_rounds.py --run-dir outputs/cpu-T --all-dev --seeds 3 --out /tmp/dev-all \
        --extra "unsafe pairs x8=outputs/cpu-T/dev_dpo/unsafe_pairs_x8" --json docs/results/cpu/dev_variants_all_dev.json
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from vpolib import examples, preference
from vpolib.analysis import paired_gain
from vpolib.config import load_config
from vpolib.io import read_jsonl
from vpolib.progress import track
from vpolib.video import make_video_backend


def variant(arg: str) -> tuple[str, Path]:
    """``--extra NAME=DIR`` -> ``(NAME, DIR)``, DIR holding a ``model`` dir."""
    name, sep, d = arg.partition("=")
    if not sep or not (Path(d) / "model").is_dir():
        raise argparse.ArgumentTypeError(f"{arg!r}: give NAME=DIR, DIR holding a model dir")
    return name, Path(d)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--json", type=Path, help="also write the rows here")
    p.add_argument("--all-dev", action="store_true", help="every ShapesWorld dev query, not 05's first n_dev")
    p.add_argument("--seeds", type=int, help="noise seeds per prompt (default: feedback.reward_seeds, as 05)")
    p.add_argument("--out", type=Path, help="with --all-dev: where the rounds' prompt files are completed")
    p.add_argument(
        "--extra", action="append", default=[], type=variant, metavar="NAME=DIR", help="a dev_dpo.py variant"
    )
    a = p.parse_args()
    if a.all_dev and not a.out:
        p.error("--all-dev writes prompts: give --out DIR")
    stage = a.run_dir / "05_dpo"
    cfg = load_config(json.loads((a.run_dir / "manifest.json").read_text())["profile"])
    seeds = a.seeds or cfg.feedback.reward_seeds
    metrics = json.loads((stage / "metrics.json").read_text())
    dev = None
    if a.all_dev:
        pool = read_jsonl(a.run_dir / "01_data" / "splits" / "dpo_pool.jsonl")[0]
        dev = preference.dev_queries(pool, cfg.feedback, None)
        a.out.mkdir(parents=True, exist_ok=True)
    backend = make_video_backend(cfg, texts=[r["query"] for r in dev] if dev else None)
    names = examples.round_dirs(len(metrics["rounds"]) - 1)  # round r trained into names[r - 1]
    # (name, round, model dir, 05's prompt file): the rounds, then the variants, each trained in place of round 1
    models = [
        (
            f"round {r}",
            r,
            a.run_dir / "03_sft" / "model" if r == 0 else stage / names[r - 1],
            preference.dev_paths(stage, r)["video"],
        )
        for r in (row["round"] for row in metrics["rounds"])
    ]
    models += [(name, None, d / "model", preference.dev_paths(d, 1)["video"]) for name, d in a.extra]  # fmt: skip
    rewards, rows = {}, []
    for name, round_, model, path in track(models, desc="models"):
        if dev:
            out = a.out / (path.name if round_ is not None else f"{model.parent.name}_{path.name}")
            if not out.exists():
                shutil.copy(path, out)
            path = out
            # 0 noise seeds: this only writes the greedy prompts 05 did not
            preference.dev_reward(cfg, model, dev, backend, 0, path)
        prompts = read_jsonl(path)[0]
        rewards[name] = preference.dev_query_rewards(cfg, prompts, backend, seeds)
        mean = sum(rewards[name].values()) / len(rewards[name])
        row = {"model": name, "round": round_, "n": len(prompts), "dev_reward": round(mean, 4)}
        if round_ is not None:
            row["in_metrics"] = round(metrics["rounds"][round_]["dev_reward"], 4)
        if round_:
            row["vs_previous"] = paired_gain(rewards[name], rewards[f"round {round_ - 1}"])
        if round_ is None:
            row["vs_round_1"] = paired_gain(rewards[name], rewards["round 1"])
        if round_ != 0:
            row["vs_sft"] = paired_gain(rewards[name], rewards["round 0"])
        rows.append(row)
        print(json.dumps(row), flush=True)
    if a.json:
        a.json.write_text(
            json.dumps({"run": a.run_dir.name, "seeds": seeds, "all_dev": a.all_dev, "rows": rows}, indent=1)
            + "\n"
        )


if __name__ == "__main__":
    main()
