"""SFT seconds per step on a CPU: TRL's fused LM head vs the loss from the logits (vpolib.trainers.LogitsSFTTrainer),
the LM head on every position (as before) or on the completion's positions only (the CPU default).

    .venv/bin/python scripts/bench_sft_loss.py --run-dir outputs/cpu-V --steps 4 --repeat 3 \
        --json docs/results/cpu/bench_sft_loss_amd_epyc.json

Each variant trains the cpu profile's SFT job (its rows from RUN/02_refine/sft.jsonl, batch, LoRA, dtype) for
``--steps`` steps from the same start; the first step (warm-up) is not counted. With ``--repeat N`` the variants run
in turn N times and each one's median counts (this 2-core machine's speed drifts by 20% within minutes);
``--torch-profile`` adds the torch profiler's seconds per operator for one step of each. The losses per step are
printed side by side: they agree to the logits' rounding. Run nothing else meanwhile. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from transformers import TrainerCallback
from trl import SFTTrainer

from vpolib import trainers
from vpolib.config import load_config
from vpolib.examples import capped_split, sft_examples
from vpolib.io import read_jsonl, write_json
from vpolib.models import load_causal_lm
from vpolib.precision import cpu_info


class EveryPositionSFTTrainer(trainers.LogitsSFTTrainer):
    """The loss from the logits, the LM head scoring every position (prompt and padding too), as before."""

    every_position = True


class StepTimes(TrainerCallback):
    """Wall seconds of each optimizer step; with ``profile``, the torch profiler's CPU seconds per operator of the
    second step (the first after the warm-up), its largest ``OPS`` and the total."""

    OPS = 6

    def __init__(self, profile: bool = False):
        self.seconds, self.t0, self.profile, self.ops = [], 0.0, profile, None

    def on_step_begin(self, args, state, control, **kwargs):
        if self.profile and state.global_step == 1:
            self.prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self.prof.__enter__()
        self.t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self.t0)
        if self.profile and state.global_step == 2:
            self.prof.__exit__(None, None, None)
            by_op = sorted(self.prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
            self.ops = {"total": round(sum(e.self_cpu_time_total for e in by_op) / 1e6, 3)}
            self.ops.update({e.key: round(e.self_cpu_time_total / 1e6, 3) for e in by_op[: self.OPS]})


def sft_rows(cfg, run_dir: Path) -> list[dict]:
    """The profile's SFT training rows from a run's SFT set (``RUN/02_refine/sft.jsonl``), split as stage 03 splits."""
    rows, _ = sft_examples(read_jsonl(run_dir / "02_refine" / "sft.jsonl")[0])
    return capped_split(rows, cfg.sft.eval_fraction, cfg.seed, cfg.sft.max_examples, cfg.sft.max_eval)[0]


def run(cls, cfg, train: list[dict], steps: int, profile: bool = False) -> dict:
    """``steps`` SFT steps with trainer class ``cls``: seconds per step after the first, the logged losses, and with
    ``profile`` the CPU seconds per operator of the second step."""
    model, tok = load_causal_lm(cfg.sft.base_model)
    knobs = {**cfg.sft.trainer, "max_steps": steps, "eval_strategy": "no", "logging_steps": 1}
    lora = cfg.sft.lora if cfg.sft.use_lora else None
    trainer = trainers.build_sft_trainer(
        model, tok, train, [], knobs, "/tmp/bench_sft_loss", cfg.seed, lora, cls
    )
    times = StepTimes(profile)
    trainer.add_callback(times)
    trainer.train()
    losses = [round(h["loss"], 4) for h in trainer.state.log_history if "loss" in h]
    out = {"s_per_step": sum(times.seconds[1:]) / max(len(times.seconds) - 1, 1), "losses": losses}
    return {**out, "profile_s": times.ops} if profile else out


def bench_parser(doc: str, steps: int, repeat: int) -> argparse.ArgumentParser:
    """The SFT benches' flags: the run whose SFT rows they train on, the profile, steps, repeats and the JSON file."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, required=True, help="a run with 02_refine/sft.jsonl")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument(
        "--repeat", type=int, default=repeat, help="runs of each variant, taken in turn; the median counts"
    )
    ap.add_argument("--json", type=Path, help="write the figures here")
    return ap


def main() -> None:
    ap = bench_parser(__doc__, steps=6, repeat=1)
    ap.add_argument(
        "--torch-profile", action="store_true", help="the first run's second step under torch's profiler"
    )
    args = ap.parse_args()
    cfg = load_config(args.profile)
    train = sft_rows(cfg, args.run_dir)
    out = {"machine": cpu_info(), "profile": args.profile, "steps": args.steps, "rows": len(train)}
    out["repeat"] = args.repeat
    variants = (
        ("trl_fused_head", SFTTrainer),
        ("logits_every_position", EveryPositionSFTTrainer),
        ("logits", trainers.LogitsSFTTrainer),
    )
    runs = {name: [] for name, _ in variants}
    for turn in range(args.repeat):  # A B C A B C ...: a drift in the machine's speed reaches every variant
        for name, cls in variants:
            runs[name].append(run(cls, cfg, train, args.steps, args.torch_profile and not turn))
            print(
                f"{turn + 1}/{args.repeat} {name:22s} {runs[name][-1]['s_per_step']:.2f} s/step", flush=True
            )
    for name, results in runs.items():
        seconds = [r["s_per_step"] for r in results]
        out[name] = {
            "s_per_step": statistics.median(seconds),
            "runs": seconds,
            "losses": results[0]["losses"],
        }
        if args.torch_profile:  # the step's operators: where the seconds go
            out[name]["profile_s"] = results[0]["profile_s"]
            print(f"{name:22s} profiled step: {out[name]['profile_s']}")
        print(f"{name:22s} median {out[name]['s_per_step']:.2f} s/step  losses {out[name]['losses']}")
    out["speedup"] = out["trl_fused_head"]["s_per_step"] / out["logits"]["s_per_step"]
    out["speedup_completion_head"] = out["logits_every_position"]["s_per_step"] / out["logits"]["s_per_step"]
    print(
        f"logits vs fused head {out['speedup']:.2f}x, completion positions vs every position "
        f"{out['speedup_completion_head']:.2f}x on {out['machine']['model']}"
    )
    if args.json:
        write_json(args.json, out)
        print(json.dumps({k: out[k] for k in ("speedup", "speedup_completion_head", "rows")}))


if __name__ == "__main__":
    main()
