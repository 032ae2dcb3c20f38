"""SFT seconds per step on a CPU by attention kernel: transformers' default ``sdpa`` (torch's flash-attention CPU
kernel), ``sdpa`` held to torch's math kernel, and ``eager`` (transformers' own matmul + softmax).

    .venv/bin/python scripts/bench_attention.py --run-dir outputs/cpu-V --steps 4 --repeat 2 \
        --json docs/results/cpu/bench_attention_amd_epyc.json

Each variant trains the cpu profile's SFT job as ``scripts/bench_sft_loss.py`` does (the CPU default loss,
``LogitsSFTTrainer``) for ``--steps`` steps from the same start, the first not timed; ``--repeat N`` takes the variants
in turn N times and keeps medians. A benchmark, not a test: run nothing else meanwhile. Nothing here changes what the
workbook trains with; it measured the choice of ``vpolib.trainers.CPU_SFT_ATTENTION`` (eager).
"""

from __future__ import annotations

import contextlib
import statistics

from bench_sft_loss import StepTimes, bench_parser, sft_rows
from torch.nn.attention import SDPBackend, sdpa_kernel

from vpolib import trainers
from vpolib.config import load_config
from vpolib.io import write_json
from vpolib.models import load_causal_lm
from vpolib.precision import cpu_info, machine_precision

VARIANTS = ("sdpa", "sdpa_math", "eager")


def run(cfg, train: list[dict], steps: int, variant: str) -> dict:
    """``steps`` SFT steps with attention ``variant``: seconds per step after the first, and the logged losses."""
    model, tok = load_causal_lm(cfg.sft.base_model)
    attention = "eager" if variant == "eager" else "sdpa"
    model.set_attn_implementation(attention)
    # the kernel named, else build_sft_trainer's CPU default (eager) would replace it
    named = {"model_init_kwargs": {"attn_implementation": attention}}
    knobs = {**cfg.sft.trainer, "max_steps": steps, "eval_strategy": "no", "logging_steps": 1, **named}
    lora = cfg.sft.lora if cfg.sft.use_lora else None
    trainer = trainers.build_sft_trainer(model, tok, train, [], knobs, "/tmp/bench_attention", cfg.seed, lora)
    times = StepTimes()
    trainer.add_callback(times)
    with sdpa_kernel([SDPBackend.MATH]) if variant == "sdpa_math" else contextlib.nullcontext():
        trainer.train()
    losses = [round(h["loss"], 4) for h in trainer.state.log_history if "loss" in h]
    return {"s_per_step": sum(times.seconds[1:]) / max(len(times.seconds) - 1, 1), "losses": losses}


def main() -> None:
    args = bench_parser(__doc__, steps=4, repeat=2).parse_args()
    cfg = load_config(args.profile)
    train = sft_rows(cfg, args.run_dir)
    out = {"machine": cpu_info(), "dtype": machine_precision(cfg.device)["dtype"], "profile": args.profile,
           "steps": args.steps, "repeat": args.repeat, "rows": len(train)}  # fmt: skip
    runs = {v: [] for v in VARIANTS}
    for turn in range(args.repeat):  # A B C A B C ...: a drift in the machine's speed reaches every variant
        for v in VARIANTS:
            runs[v].append(run(cfg, train, args.steps, v))
            print(f"{turn + 1}/{args.repeat} {v:10s} {runs[v][-1]['s_per_step']:.2f} s/step", flush=True)
    for v, results in runs.items():
        seconds = [r["s_per_step"] for r in results]
        out[v] = {"s_per_step": statistics.median(seconds), "runs": seconds, "losses": results[0]["losses"]}
        print(f"{v:10s} median {out[v]['s_per_step']:.2f} s/step  losses {out[v]['losses']}")
    out["eager_speedup"] = out["sdpa"]["s_per_step"] / out["eager"]["s_per_step"]
    print(f"eager vs sdpa {out['eager_speedup']:.2f}x on {out['machine']['model']}, {out['dtype']}")
    if args.json:
        write_json(args.json, out)


if __name__ == "__main__":
    main()
