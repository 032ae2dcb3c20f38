"""Before vs after, in one run: SFT and DPO seconds per step and generation tokens/s of the cpu profile's optimizer.

    .venv/bin/python scripts/bench_speed.py            # ~4 min on 2 idle cores; run nothing else meanwhile

"before" is the previous cpu profile (1 torch thread, fp32, the paper's ~250-token instruction, generation
batches of 8, LoRA dropout 0.05, a reference forward in every DPO step); "after" is today's (all cores, bf16
autocast in training and bf16 weights in generation, the short instruction, batches of 32, no LoRA dropout,
reference log-probs computed once before DPO training). A step's time includes building the trainer (tokenizing,
and after, the reference pass) spread over the timed steps, so the one-off reference pass is not hidden.
A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from vpolib.backends import GenParams, chat_generate
from vpolib.models import load_causal_lm
from vpolib.precision import cpu_info, matmul_timing
from vpolib.shapesworld import make_queries
from vpolib.shapesworld.teacher import teacher_prompt
from vpolib.templates import optimize_messages
from vpolib.trainers import build_dpo_trainer, build_sft_trainer

SETTINGS = {
    "before": {"threads": 1, "bf16": False, "instruction": "paper", "generation_batch": 8,
               "lora_dropout": 0.05, "precompute_ref": False},
    "after": {"threads": len(os.sched_getaffinity(0)), "bf16": True, "instruction": "short", "generation_batch": 32,
              "lora_dropout": 0.0, "precompute_ref": True},
}  # fmt: skip
LORA = {"r": 16, "lora_alpha": 32, "target_modules": "all-linear"}  # dropout per setting


def examples(n: int, instruction: str) -> tuple[list[dict], list[dict]]:
    """SFT rows and DPO pairs on ShapesWorld queries with teacher prompts (what the cpu profile trains on)."""
    qs = make_queries(n, seed=7)
    sft, dpo = [], []
    for q in qs:
        user = optimize_messages(q["query"], instruction)
        good, bad = q["caption"], teacher_prompt(q["query"], 1)[0]
        sft.append({"prompt": user, "completion": [{"role": "assistant", "content": bad}]})
        dpo.append(
            {
                "prompt": user,
                "chosen": [{"role": "assistant", "content": good}],
                "rejected": [{"role": "assistant", "content": bad}],
            }
        )
    return sft, dpo


def train_seconds(build, rows, batch: int, steps: int, setting: dict, out: str, **extra) -> float:
    """Seconds per step, the first (warm-up) step not counted, trainer build included (LoRA r16 on SmolLM2)."""
    model, tok = load_causal_lm("smollm2-135m-instruct")
    args = {
        "max_steps": steps + 1,
        "per_device_train_batch_size": batch,
        "learning_rate": 1e-4,
        "bf16": setting["bf16"],
        "use_cpu": True,
        "activation_checkpointing": False,
        "logging_steps": 1,
        "max_length": 384,
        **extra,
    }
    lora = {**LORA, "lora_dropout": setting["lora_dropout"]}
    start = time.perf_counter()
    trainer = build(model, tok, rows[: batch * (steps + 1)], [], args, out, 0, lora=lora)
    built = time.perf_counter() - start
    times = []

    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_step_begin(self, *a, **k):
            times.append(time.perf_counter())

        def on_train_end(self, *a, **k):
            times.append(time.perf_counter())

    trainer.add_callback(Clock())
    trainer.train()
    return (built + times[-1] - times[1]) / steps


def gen_tokens_per_s(instruction: str, batch: int, bf16: bool, n: int, new: int) -> float:
    """Generation as the profile runs it: weights in bf16 (``sft.dtype: bfloat16``) or fp32."""
    model, tok = load_causal_lm("smollm2-135m-instruct", dtype="bfloat16" if bf16 else None)
    model.eval().generation_config.min_new_tokens = new  # fixed length: the same work in both settings
    convs = [optimize_messages(q["query"], instruction) for q in make_queries(n, seed=3)]
    params = GenParams(temperature=0.0, top_p=1.0, n=1, max_new_tokens=new)
    start = time.perf_counter()
    chat_generate(model, tok, convs, params, batch)
    return n * new / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--n-gen", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--out", default="/tmp/vpo-bench")
    ap.add_argument("--json", help="also write the figures here (e.g. docs/results/cpu/bench_speed.json)")
    args = ap.parse_args()
    import datasets
    from transformers.utils import logging

    datasets.disable_progress_bars()
    logging.set_verbosity_error()
    # bf16's gain depends on the CPU (vpolib/precision.py): record which one this ran on
    machine = {**cpu_info(), "matmul": matmul_timing()}
    speedup_bf16 = machine["matmul"]["bf16_speedup"]
    print(f"{machine['model']} ({machine['capability']}): bf16 matmul {speedup_bf16:.1f}x fp32", flush=True)
    results = {}
    for name, st in SETTINGS.items():
        torch.set_num_threads(st["threads"])
        sft, dpo = examples(64, st["instruction"])
        results[name] = {
            "sft_s_per_step(batch 8)": train_seconds(build_sft_trainer, sft, 8, args.steps, st, args.out),
            "dpo_s_per_step(batch 4)": train_seconds(
                build_dpo_trainer,
                dpo,
                4,
                args.steps,
                st,
                args.out,
                precompute_ref_log_probs=st["precompute_ref"],
            ),
            "generation_tok_per_s": gen_tokens_per_s(
                st["instruction"], st["generation_batch"], st["bf16"], args.n_gen, args.new_tokens
            ),
        }
        print(
            f"{name:>6} ({', '.join(f'{k} {v}' for k, v in st.items())}): "
            + ", ".join(f"{k} {v:.2f}" for k, v in results[name].items()),
            flush=True,
        )
    speedup = {
        k: results["before"][k] / results["after"][k]
        if "s_per_step" in k
        else results["after"][k] / results["before"][k]
        for k in results["before"]
    }
    print("speed-up after/before: " + ", ".join(f"{k} {v:.1f}x" for k, v in speedup.items()))
    if args.json:
        import json
        from pathlib import Path

        Path(args.json).write_text(
            json.dumps(
                {"machine": machine, "settings": SETTINGS, "results": results, "speedup": speedup}, indent=2
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
