"""``python -m vpolib plan --profile full``: every job of the full profile with its command, GPUs and
estimated GPU-hours, from per-item costs. Runs nothing. (Costs are those of the full profile's models:
Llama-3-8B, CogVideoX, VisionReward; other profiles' item counts are shown on the same basis.)

Item counts are MEASURED here (the query lists in data/, the profile's keys). Per-item GPU costs are
ASSUMPTIONS, each with its source, until a GPU run replaces them: no stage has run on a GPU yet.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from vpolib.config import load_config
from vpolib.paths import data_root
from vpolib.run import parse_sets
from vpolib.templates import optimize_messages

CHARS_PER_TOKEN = 4.0  # assumption: OpenAI's rule of thumb for English text (Llama-3's tokenizer is similar)
H100_BF16_FLOPS = 989e12  # dense bf16 peak, NVIDIA H100 SXM datasheet
H100_HBM_BYTES_S = 3.35e12  # HBM3 bandwidth, NVIDIA H100 SXM datasheet
MFU = 0.35  # assumption: model-FLOPs utilisation of an 8B ZeRO-3 fine-tune on 8 H100s (typical 30-40%)
DECODE_EFFICIENCY = 0.25  # assumption: share of the HBM roofline HF generate reaches at batch 32
LLAMA3_8B_PARAMS = 8.03e9  # Meta-Llama-3-8B-Instruct config
VBENCH_SAMPLES = 5  # VBench's protocol: 5 videos per prompt (VBench README)
# Seconds per video on one H100, 50 steps, bf16: the CogVideoX model cards' "Inference Speed" row.
COGVIDEOX_H100_S = {"THUDM/CogVideoX-5b": 90.0, "THUDM/CogVideoX-2b": 45.0}
VISIONREWARD_S_PER_QUESTION = (
    0.5  # assumption (no published figure): one prefill of ~2k video tokens per question
)


@dataclass
class Job:
    stage: str
    name: str
    command: str
    gpus: int  # GPUs the job uses at once
    items: int  # measured count (queries, examples, videos)
    item: str  # what one item is
    gpu_s_per_item: float  # GPU-seconds per item (an assumption unless `basis` says measured)
    basis: str  # where gpu_s_per_item comes from

    @property
    def gpu_hours(self) -> float:
        return self.items * self.gpu_s_per_item / 3600

    @property
    def wall_hours(self) -> float:
        return self.gpu_hours / self.gpus if self.gpus else 0.0


def _count(data_cfg) -> dict:
    """Measured sizes: query lists, the optimizer's input and a teacher prompt's length (in characters)."""
    root = data_root(data_cfg.root)
    sft = json.loads((root / data_cfg.vpo_sft).read_text(encoding="utf-8"))
    dpo = json.loads((root / data_cfg.vpo_dpo).read_text(encoding="utf-8"))
    expansions = (
        (root / data_cfg.vbench_dir / "all_dimension_longer.txt").read_text(encoding="utf-8").splitlines()
    )
    vbench = (root / data_cfg.vbench_dir / "all_dimension.txt").read_text(encoding="utf-8").splitlines()
    return {
        "sft_queries": len(sft),
        "dpo_queries": len(dpo) - data_cfg.heldout_size,
        "heldout": data_cfg.heldout_size,
        "vbench_prompts": sum(bool(v.strip()) for v in vbench),
        "input_chars": len(optimize_messages("a cute dog on the grass")[0]["content"]),
        "prompt_chars": sum(map(len, expansions)) / len(expansions),
    }


def build_plan(profile: str = "full", overrides: dict | None = None) -> tuple[list[Job], dict]:
    """The jobs of ``profile`` with their costs, and the measured counts they rest on."""
    cfg = load_config(profile, overrides)
    n = _count(cfg.data)
    tokens = (n["input_chars"] + n["prompt_chars"]) / CHARS_PER_TOKEN  # one SFT example / one DPO side
    out_tokens = n["prompt_chars"] / CHARS_PER_TOKEN  # one generated prompt
    train_gpus = 8 if cfg.sft.launcher == "accelerate" else 1
    run = f"python -m vpolib run --profile {profile} --run-dir RUN"
    sft_epochs = cfg.sft.trainer.get("num_train_epochs", 1)
    dpo_epochs = cfg.dpo.trainer.get("num_train_epochs", 1)
    # Training FLOPs: 6 N T for forward + backward, +2 N T when activations are recomputed (checkpointing).
    flops_per_token = (8 if cfg.sft.trainer.get("activation_checkpointing") else 6) * LLAMA3_8B_PARAMS
    train_basis = (
        f"FLOPs 8·N·T at MFU {MFU} of {H100_BF16_FLOPS / 1e12:.0f} TFLOP/s, {tokens:.0f} tok/example "
        "(assumption; a lower bound: ZeRO-3 communication and padding are not counted)"
    )
    # Decoding an 8B bf16 model is bandwidth-bound: each step reads the weights once for the whole batch.
    decode_tok_s = H100_HBM_BYTES_S / (2 * LLAMA3_8B_PARAMS) * 32 * DECODE_EFFICIENCY
    decode_basis = (
        f"HBM roofline x batch 32 x {DECODE_EFFICIENCY} = {decode_tok_s:.0f} tok/s, "
        f"{out_tokens:.0f} tok/prompt (assumption)"
    )
    video_s = COGVIDEOX_H100_S.get(cfg.video.cogvideox_model, COGVIDEOX_H100_S["THUDM/CogVideoX-5b"])
    # every sample rendered with each noise seed, in each preference round
    videos = n["dpo_queries"] * cfg.feedback.samples_per_query * cfg.feedback.reward_seeds * cfg.dpo.rounds
    bench_methods = len(cfg.analysis.benchmark_methods)
    accelerate = "accelerate launch --config_file configs/accelerate/zero3.yaml -m vpolib.train"
    jobs = [
        Job(
            "01",
            "data: clean, tag, split",
            f"{run} --from 01 --to 01",
            0,
            n["sft_queries"] + n["dpo_queries"],
            "query",
            0.0,
            "CPU only",
        ),
        Job(
            "02",
            "refine: teacher + critique + refine (API)",
            f"{run} --from 02 --to 02  # OPENAI_* set",
            0,
            n["sft_queries"] * 3,
            "API call",
            0.0,
            "GPT-4o-class endpoint, no local GPU",
        ),
        Job(
            "03",
            "SFT Llama-3-8B, full, ZeRO-3",
            f"{accelerate} sft --run-dir RUN --profile {profile}",
            train_gpus,
            n["sft_queries"] * sft_epochs,
            "example x epoch",
            flops_per_token * tokens / (H100_BF16_FLOPS * MFU),
            train_basis,
        ),
        Job(
            "03",
            "SFT held-out prompts",
            f"{run} --from 03 --to 03  # after the job above (reused)",
            1,
            n["heldout"],
            "prompt",
            out_tokens / decode_tok_s,
            decode_basis,
        ),
        Job(
            "04",
            f"sample {cfg.feedback.samples_per_query} prompts per DPO query",
            (
                f"vllm serve RUN/03_sft/model --served-model-name {cfg.feedback.sampler_model} --port 8000 "
                f"(own venv); {run} --from 04 --to 04"
                if cfg.feedback.sampler == "openai"
                else f"{run} --from 04 --to 04"
            ),
            1,
            videos,
            "prompt",
            out_tokens / decode_tok_s,
            decode_basis,
        ),
        Job(
            "04",
            f"render {cfg.video.cogvideox_model.split('/')[-1]}, 50 steps, sharded",
            f"accelerate launch --num_processes 8 -m vpolib.video render --run-dir RUN --profile {profile}",
            8,
            videos,
            "video",
            video_s,
            "CogVideoX model card, H100 bf16 50 steps (assumption until measured)",
        ),
        Job(
            "04",
            "VisionReward-Video, 64 questions, sharded",
            ".venv-visionreward/bin/accelerate launch --num_processes 8 -m vpolib.visionreward --run-dir RUN",
            8,
            videos,
            "video",
            64 * VISIONREWARD_S_PER_QUESTION,
            f"{VISIONREWARD_S_PER_QUESTION} s/question (assumption, no source)",
        ),
        Job(
            "05",
            f"DPO, full, ZeRO-3 ({1 + len(cfg.dpo.ablations)} pair sets)",
            f"{accelerate} dpo --run-dir RUN --profile {profile} [--pairs text|video]",
            train_gpus,
            n["dpo_queries"] * dpo_epochs * (1 + len(cfg.dpo.ablations)),
            "pair x epoch",
            # per pair: chosen + rejected through the policy (fwd+bwd) and the frozen reference (fwd, 2 N T)
            2 * (flops_per_token + 2 * LLAMA3_8B_PARAMS) * tokens / (H100_BF16_FLOPS * MFU),
            train_basis + "; upper bound: <= 1 pair per query in every pair set",
        ),
        Job(
            "05",
            "VPO held-out prompts",
            f"{run} --from 05 --to 05  # after the jobs above (reused)",
            1,
            n["heldout"] * (1 + len(cfg.dpo.ablations)),
            "prompt",
            out_tokens / decode_tok_s,
            decode_basis,
        ),
        Job(
            "06",
            f"VBench videos, {bench_methods} methods x {VBENCH_SAMPLES}, sharded",
            f"python -m vpolib.benchmarks prepare --run-dir RUN --profile {profile}; accelerate launch "
            "--num_processes 8 -m vpolib.video render --stage-dir RUN/06_evaluate/vbench/<method>",
            8,
            n["vbench_prompts"] * VBENCH_SAMPLES * bench_methods,
            "video",
            video_s,
            "CogVideoX model card, H100 bf16 50 steps (assumption until measured)",
        ),
    ]
    jobs += grpo_jobs(cfg, profile, tokens, out_tokens, decode_tok_s, decode_basis, video_s, train_basis)
    return jobs, n


def grpo_jobs(
    cfg, profile, tokens, out_tokens, decode_tok_s, decode_basis, video_s, train_basis
) -> list[Job]:
    """Notebook 08's online RL (``grpo``): rollouts, a render and a VisionReward score per rollout and seed, and the
    policy update; all in the training process (the reward renders where the policy samples)."""
    g = cfg.grpo
    epochs = g.trainer.get("num_train_epochs", 1)
    rollouts = (g.n_queries or cfg.feedback.n_queries) * g.trainer.get("num_generations", 8) * epochs
    videos = rollouts * g.reward_seeds
    # per rollout: fwd + bwd through the policy (6 N T), and a reference forward (2 N T) when beta > 0
    update = (6 + (2 if g.trainer.get("beta", 0.0) else 0)) * LLAMA3_8B_PARAMS * tokens
    cmd = f"python -m vpolib run --profile {profile} --run-dir RUN --from 08 --to 08"
    return [
        Job("08", "GRPO rollouts (policy samples)", cmd, 1, rollouts, "prompt", out_tokens / decode_tok_s,
            decode_basis),
        Job("08", f"GRPO reward: render, {cfg.video.cogvideox_model.split('/')[-1]}", cmd, 1, videos, "video",
            video_s, "CogVideoX model card, H100 bf16 50 steps (assumption until measured)"),
        Job("08", "GRPO reward: VisionReward-Video, 64 questions", cmd, 1, videos, "video",
            64 * VISIONREWARD_S_PER_QUESTION, f"{VISIONREWARD_S_PER_QUESTION} s/question (assumption, no source)"),
        Job("08", "GRPO policy update", cmd, 1, rollouts, "rollout", update / (H100_BF16_FLOPS * MFU),
            train_basis),
    ]  # fmt: skip


def format_plan(jobs: list[Job], counts: dict, profile: str) -> str:
    """A plain-text table (one row per job) and the totals, with what each number rests on."""
    head = f"{'stage':<5} {'job':<52} {'GPUs':>4} {'items':>8} {'item':<16} {'GPU-s/item':>10} {'GPU-h':>8} {'wall-h':>7}"
    lines = [f"plan for profile {profile!r} (nothing is run)", "", head, "-" * len(head)]
    for j in jobs:
        lines.append(
            f"{j.stage:<5} {j.name[:52]:<52} {j.gpus:>4} {j.items:>8} {j.item:<16} {j.gpu_s_per_item:>10.2f} "
            f"{j.gpu_hours:>8.1f} {j.wall_hours:>7.1f}"
        )
    total = sum(j.gpu_hours for j in jobs)
    lines += [
        "-" * len(head),
        f"{'total':<5} {'':<52} {'':>4} {'':>8} {'':<16} {'':>10} {total:>8.1f}",
        "",
        "commands:",
    ]
    lines += [f"  [{j.stage}] {j.name}: {j.command}" for j in jobs]
    lines += ["", "basis of each per-item cost:"]
    lines += [f"  [{j.stage}] {j.name}: {j.basis}" for j in jobs]
    lines += [
        "",
        f"measured here (data/ and the profile): {counts}",
        "wall-h = GPU-h / the job's GPUs (all busy); GPUs 0: CPU or API only.",
        "Every GPU-s/item is an assumption until replaced by a measurement (README: what ran on a GPU).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vpolib plan",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--profile", default="full")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    jobs, counts = build_plan(args.profile, parse_sets(args.set))
    print(format_plan(jobs, counts, args.profile))
    return 0
