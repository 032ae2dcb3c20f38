"""Keep a finished run's per-stage wall time, with the processor and dtype it ran on, for the README's table.

    .venv/bin/python scripts/record_timing.py outputs/<run>     # -> docs/results/<profile>/timings/<run id>.json

One file per run; `scripts/results_table.py` writes one README row per file (the timings per processor of the
speed issue). Record only runs made in one pass on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vpolib.precision import PROBE_N

REPO = Path(__file__).resolve().parent.parent


def timing_record(manifest: dict) -> dict:
    """The manifest's run id, commit, processor, dtype, threads and seconds per stage."""
    precision = manifest.get("precision") or {}
    stages = manifest.get("stages", {})
    return {
        "run_id": manifest["run_id"],
        "git_commit": manifest.get("git_commit"),
        "created": manifest.get("created"),
        "profile": manifest["profile"],
        "cpu": precision.get("cpu"),
        "dtype": precision.get("dtype"),
        "torch_threads": next(
            (s.get("torch_threads") for s in stages.values() if s.get("torch_threads")), None
        ),
        "seconds": {name: stage.get("seconds") for name, stage in sorted(stages.items())},
    }


def sft_throughput(run_dir: Path, precision: dict) -> dict | None:
    """Stage 03's SFT training: tokens a second (TRL's count: the attended tokens, prompts included, padding not)
    and the model's floating-point operations a second as a share of this CPU's measured matmul rate in the dtype
    it trained in (the precision probe: one 512 x 512 product). Model FLOPs per token: 2 x parameters forward plus
    2 x parameters for the gradient of the activations (LoRA: the frozen weights get none), 6 x with full
    fine-tuning; attention's own products are left out (a few % at these lengths). An estimate, not a profile."""
    info_path, metrics_path = (
        run_dir / "03_sft" / "model" / "train_info.json",
        run_dir / "03_sft" / "metrics.json",
    )
    timing = precision.get("timing")
    if not (info_path.exists() and metrics_path.exists() and timing):
        return None
    info, metrics = json.loads(info_path.read_text()), json.loads(metrics_path.read_text())
    logged = [h for h in info["log_history"] if "num_tokens" in h and "step" in h]
    if not logged or not info.get("train_s"):
        return None
    tokens = (
        logged[-1]["num_tokens"] / logged[-1]["step"] * info["steps"]
    )  # the last logged step, scaled to all
    tokens_per_s = tokens / info["train_s"]
    flops_per_token = (4 if metrics.get("lora") else 6) * metrics["parameters"]
    dtype = precision.get("dtype", "float32")
    matmul_flops = 2 * PROBE_N**3 / timing[f"{dtype}_s"]
    return {
        "steps": info["steps"],
        "train_s": info["train_s"],
        "tokens_per_s": round(tokens_per_s, 1),
        "model_gflops_per_s": round(tokens_per_s * flops_per_token / 1e9, 1),
        "matmul_gflops_per_s": round(matmul_flops / 1e9, 1),
        "share_of_matmul": round(tokens_per_s * flops_per_token / matmul_flops, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    args = ap.parse_args()
    path = args.run_dir / "manifest.json"
    if not path.exists():
        raise SystemExit(f"{path}: no manifest (is {args.run_dir} a run dir?)")
    manifest = json.loads(path.read_text())
    record = timing_record(manifest)
    record["sft"] = sft_throughput(args.run_dir, manifest.get("precision") or {})
    missing = [name for name, s in record["seconds"].items() if s is None]
    if missing:
        raise SystemExit(f"{args.run_dir}: stages {missing} have no time (not finished)")
    out = REPO / "docs" / "results" / record["profile"] / "timings" / f"{record['run_id']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
