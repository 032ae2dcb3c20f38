"""Seconds per GRPO step of a profile's ``grpo`` section on this CPU: TRL's row per completion and ``generate`` vs the
prompt run once and vpolib's decoding loop.

    .venv/bin/python scripts/bench_grpo.py --steps 3 --json docs/results/cpu/bench_grpo_amd_epyc.json
                                                        # ~4 min on 2 idle cores; run nothing else meanwhile

Trains ``--steps`` GRPO steps from SmolLM2-135M-Instruct (the cpu profile's base; notebook 08 starts from the SFT
model, the same size) on ShapesWorld queries, with the profile's video reward, three times from the same seed: with
TRL's ``GRPOTrainer`` (one row per completion, each with its prompt; TRL's ``generate``), with
``SharedPromptGRPOTrainer`` sampling through TRL's ``generate`` (each prompt once for its completions in the
forward and backward), and with ``SharedPromptGRPOTrainer`` as the CPU default runs it (sampling through
:func:`vpolib.backends.generate_fast` too). Step 1 samples the same completions in the first two (same weights and
seed); later steps sample from weights that differ by rounding, so their completion lengths may differ; the
decoding loop draws other samples from the same distribution. A step's
seconds split into sampling and rewarding the completions (TRL's ``_generate_and_score_completions``) and the
rest (the forward, backward and update). Prints them with the videos rendered, the tokens generated and the
processor. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from bench_sft_loss import StepTimes
from trl import GRPOTrainer

from vpolib import shared_prompt, trainers
from vpolib.config import load_config
from vpolib.io import write_json
from vpolib.models import load_causal_lm
from vpolib.precision import cpu_info
from vpolib.rl import VideoReward, rl_rows
from vpolib.shapesworld import make_queries
from vpolib.video import make_video_backend


class TRLSampling(shared_prompt.SharedPromptGRPOTrainer):
    """The prompt once in the forward and backward; the completions sampled by TRL's ``generate``."""

    def _fast_sampling(self) -> bool:
        return False


def run(cls, cfg, steps: int) -> dict:
    """``steps`` GRPO steps with trainer class ``cls``: seconds per step, split into sampling + reward and the rest."""
    reward = VideoReward(make_video_backend(cfg), cfg.seed, cfg.grpo.reward_seeds, cfg.grpo.render_batch)
    model, tok = load_causal_lm("smollm2-135m-instruct")
    rows = rl_rows(make_queries(8 * steps, seed=11), cfg.instruction)
    knobs = {**cfg.grpo.trainer, "max_steps": steps, "logging_steps": 1}
    lora = cfg.grpo.lora if cfg.grpo.use_lora else None
    with tempfile.TemporaryDirectory() as out:
        trainer = trainers.build_grpo_trainer(model, tok, rows, [], knobs, out, cfg.seed, lora, [reward], cls)
        sampling, generate = [], trainer._generate_and_score_completions

        def timed(batch):  # the sampling and rewarding of one step's completions
            t0 = time.perf_counter()
            result = generate(batch)
            sampling.append(time.perf_counter() - t0)
            return result

        trainer._generate_and_score_completions = timed
        times = StepTimes()
        trainer.add_callback(times)
        trainer.train()
    lengths = [round(h["completions/mean_length"], 1) for h in trainer.state.log_history if "loss" in h]
    return {
        "s_per_step": sum(times.seconds) / len(times.seconds),
        "step_s": [round(x, 2) for x in times.seconds],
        "sampling_s": [round(x, 2) for x in sampling],
        "training_s": [round(a - b, 2) for a, b in zip(times.seconds, sampling, strict=True)],
        "completion_mean_length": lengths,
        "videos": reward.videos,
        "tokens": reward.tokens,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    cfg = load_config(args.profile)
    out = {"machine": cpu_info(), "profile": args.profile, "steps": args.steps, "dtype": cfg.grpo.dtype,
           "bf16": cfg.grpo.trainer.get("bf16")}  # fmt: skip
    variants = (("trl_rows", GRPOTrainer), ("shared_prompt_trl_generate", TRLSampling),
                ("shared_prompt", shared_prompt.SharedPromptGRPOTrainer))  # fmt: skip
    for name, cls in variants:
        out[name] = r = run(cls, cfg, args.steps)
        print(f"{name:26s} {r['s_per_step']:.1f} s/step: sampling+reward {r['sampling_s']}, the rest "
              f"{r['training_s']}; completion length {r['completion_mean_length']}", flush=True)  # fmt: skip
    trl, once, loop = (out[name] for name, _ in variants)
    out["speedup"] = trl["s_per_step"] / loop["s_per_step"]
    out["training_speedup_step1"] = trl["training_s"][0] / once["training_s"][0]  # the same completions
    # per completion token: the loop's samples differ from generate's, and so may their lengths
    per_token = lambda r: sum(r["sampling_s"]) / sum(r["completion_mean_length"])  # noqa: E731
    out["sampling_speedup_per_token"] = per_token(once) / per_token(loop)
    print(f"speedup {out['speedup']:.2f}x a step, {out['training_speedup_step1']:.2f}x step 1's training, "
          f"{out['sampling_speedup_per_token']:.2f}x sampling + reward a token, on {out['machine']['model']}")  # fmt: skip
    if args.json:
        write_json(args.json, out)


if __name__ == "__main__":
    main()
