"""DPO seconds per step on a CPU: TRL's two rows per pair vs the prompt run once (vpolib.shared_prompt.SharedPromptDPOTrainer).

    .venv/bin/python scripts/bench_dpo_loss.py --steps 8 --json docs/results/cpu/bench_dpo_loss_amd_epyc.json
    .venv/bin/python scripts/bench_dpo_loss.py --fp32 ...                  # fp32 where auto would pick bf16
    .venv/bin/python scripts/bench_dpo_loss.py --run-dir outputs/cpu-T     # a run's round-1 pairs and SFT model

Both train the cpu profile's DPO job (its trainer knobs: batch, loss, bf16 as ``auto`` resolved here, the reference
pass before training; its LoRA) for ``--steps`` steps from the same start, on the pairs of ``RUN/04_feedback``
from ``RUN/03_sft/model`` or, without ``--run-dir``, on ShapesWorld caption-vs-teacher pairs (bench_speed.py's)
from SmolLM2-135M-Instruct. The first step (warm-up) is not counted; the reference pass (building the trainer)
is timed apart. Tokens per step are those the model runs (padding included). The losses per step are printed
side by side: in fp32 they agree to the printed digits; in bf16 each path
follows its own rounding (``--fp32`` gives the reference trajectory). Run nothing else meanwhile. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench_sft_loss import StepTimes
from bench_speed import examples
from trl import DPOTrainer

from vpolib import shared_prompt, trainers
from vpolib.config import load_config
from vpolib.examples import capped_split, pair_examples
from vpolib.io import read_jsonl, write_json
from vpolib.models import load_causal_lm
from vpolib.precision import cpu_info


def tokens_per_step(trainer, steps: int) -> float:
    """Mean tokens the model runs per step (padding included): TRL's 2 rows a pair, or one packed row a pair."""
    loader, total = trainer.get_train_dataloader(), 0
    for i, batch in enumerate(loader):
        if i == steps:
            break
        if isinstance(trainer, shared_prompt.SharedPromptDPOTrainer) and trainer._shared_prompt():
            total += shared_prompt.shared_prompt_rows(batch["input_ids"], batch["attention_mask"],
                                                 batch["completion_mask"])["input_ids"].numel()  # fmt: skip
        else:
            total += batch["input_ids"].numel()
    return total / max(min(steps, len(loader)), 1)


def run(cls, cfg, start: str, train: list[dict], steps: int, bf16: bool) -> dict:
    """``steps`` DPO steps with trainer class ``cls``: seconds per step after the first, the reference pass's
    seconds, tokens per step and the logged losses."""
    model, tok = load_causal_lm(start)
    knobs = {**cfg.dpo.trainer, "max_steps": steps, "eval_strategy": "no", "logging_steps": 1, "bf16": bf16}
    lora = cfg.dpo.lora if cfg.dpo.use_lora else None
    t0 = time.perf_counter()
    trainer = trainers.build_dpo_trainer(
        model, tok, train, [], knobs, "/tmp/bench_dpo_loss", cfg.seed, lora, cls
    )
    built = time.perf_counter() - t0
    times = StepTimes()
    trainer.add_callback(times)
    trainer.train()
    losses = [round(h["loss"], 4) for h in trainer.state.log_history if "loss" in h]
    return {
        "s_per_step": sum(times.seconds[1:]) / max(len(times.seconds) - 1, 1),
        "build_s": built,
        "tokens_per_step": tokens_per_step(trainer, steps),
        "losses": losses,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, help="a run with 03_sft/model and 04_feedback/pairs.jsonl")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument(
        "--fp32", action="store_true", help="train in fp32 whatever the profile's auto resolves to"
    )
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    cfg = load_config(args.profile)
    bf16 = bool(cfg.dpo.trainer.get("bf16")) and not args.fp32
    if args.run_dir:
        start = str(args.run_dir / "03_sft" / "model")
        rows, _ = pair_examples(read_jsonl(args.run_dir / "04_feedback" / "pairs.jsonl")[0])
        source = f"{args.run_dir}/04_feedback/pairs.jsonl"
    else:
        start, rows, source = cfg.sft.base_model, examples(64, "short")[1], "ShapesWorld caption vs teacher"
    train, _ = capped_split(rows, cfg.dpo.eval_fraction, cfg.seed, None, cfg.dpo.max_eval)
    batch = cfg.dpo.trainer["per_device_train_batch_size"]
    train = train[: batch * (args.steps + 1)]  # the reference pass covers the pairs trained on, as in a run
    out = {"machine": cpu_info(), "profile": args.profile, "steps": args.steps, "pairs": len(train),
           "source": source, "start": start, "bf16": bf16}  # fmt: skip
    for name, cls in (("trl_two_rows", DPOTrainer), ("shared_prompt", shared_prompt.SharedPromptDPOTrainer)):
        out[name] = run(cls, cfg, start, train, args.steps, bf16)
        r = out[name]
        print(f"{name:14s} {r['s_per_step']:.2f} s/step  reference pass {r['build_s']:.1f} s  "
              f"{r['tokens_per_step']:.0f} tokens/step  losses {r['losses']}", flush=True)  # fmt: skip
    out["speedup"] = out["trl_two_rows"]["s_per_step"] / out["shared_prompt"]["s_per_step"]
    print(f"speedup {out['speedup']:.2f}x on {out['machine']['model']} (bf16 {out['bf16']})")
    if args.json:
        write_json(args.json, out)
        print(json.dumps({k: out[k] for k in ("speedup", "pairs")}))


if __name__ == "__main__":
    main()
