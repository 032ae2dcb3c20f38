"""Training entry point over the notebooks' own trainer functions, runnable under ``accelerate launch``.

    python -m vpolib.train sft --run-dir DIR [--profile P] [--set k=v ...]
    python -m vpolib.train dpo --run-dir DIR [--profile P] [--set k=v ...] [--pairs both|text|video]
    accelerate launch --config_file configs/accelerate/zero3.yaml -m vpolib.train sft --run-dir DIR --profile full
    python -m vpolib.train job JOB.json      # what train_and_save(launcher="accelerate") launches
    python -m vpolib.train merge ADAPTER_DIR OUT_DIR   # a plain model for an engine that needs one (vllm serve)

``sft`` / ``dpo`` select the examples exactly as notebooks 03 / 05 do (same functions, same caps) and
save to ``DIR/03_sft/model`` / ``DIR/05_dpo/model[_<pairs>]``, where the notebooks look for them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch.distributed as dist
from accelerate import PartialState

from vpolib.checkpoints import dir_size, export_merged
from vpolib.config import load_config
from vpolib.examples import PAIR_SETS, round_dirs, sft_examples, split, variant_files, variant_split
from vpolib.io import read_jsonl
from vpolib.run import parse_sets
from vpolib.trainers import BUILDERS, train_and_save


def sft_job(cfg, run_dir: Path) -> dict:
    """Notebook 03's SFT job: 02's examples, split and capped by ``cfg.sft``."""
    rows, _ = sft_examples(read_jsonl(run_dir / "02_refine" / "sft.jsonl")[0])
    train, evaluation = split(rows, cfg.sft.eval_fraction, cfg.seed)
    return {
        "kind": "sft",
        "base": cfg.sft.base_model,
        "train": train[: cfg.sft.max_examples],
        "evaluation": evaluation[: cfg.sft.max_eval],
        "trainer": cfg.sft.trainer,
        "lora": cfg.sft.lora if cfg.sft.use_lora else None,
        "out_dir": str(run_dir / "03_sft" / "model"),
        "seed": cfg.seed,
    }


def dpo_job(cfg, run_dir: Path, pairs: str | None = None) -> dict:
    """Notebook 05's DPO job for one pair set (default ``cfg.dpo.pairs``), from 03's model on 04's pairs: the
    first preference round (later rounds sample from the latest model: notebook 05)."""
    name = pairs or cfg.dpo.pairs
    train, evaluation, _ = variant_split(run_dir / "04_feedback", name, cfg.dpo, cfg.seed)
    main = name == cfg.dpo.pairs
    model_dir = round_dirs(cfg.dpo.rounds)[0] if main else variant_files(name, cfg.dpo.pairs)[0]
    return {
        "kind": "dpo",
        "base": str(run_dir / "03_sft" / "model"),
        "train": train,
        "evaluation": evaluation,
        "trainer": cfg.dpo.trainer,
        "lora": cfg.dpo.lora if cfg.dpo.use_lora else None,
        "out_dir": str(run_dir / "05_dpo" / model_dir),
        "seed": cfg.seed,
    }


def run_job(job: dict) -> dict:
    """Train one job in this process (one rank of an ``accelerate launch``): :func:`train_and_save`."""
    if not job["train"]:
        raise SystemExit(f"{job['kind']}: no training examples")
    return train_and_save(
        BUILDERS[job["kind"]],
        job["base"],
        job["train"],
        job["evaluation"],
        job["trainer"],
        job["lora"],
        job["out_dir"],
        job["seed"],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vpolib.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", choices=["sft", "dpo", "job", "merge"])
    parser.add_argument(
        "job_file", nargs="?", help="job: the JSON written by train_and_save; merge: adapter dir"
    )
    parser.add_argument("out_dir", nargs="?", help="merge: where the merged model goes")
    parser.add_argument("--run-dir", help="sft/dpo: the run dir holding 02/04's outputs")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--pairs", choices=sorted(PAIR_SETS), help="dpo: pair set (default dpo.pairs)")
    args = parser.parse_args(argv)
    if args.kind == "merge":
        out = export_merged(args.job_file, args.out_dir)
        print(f"merged {args.job_file} -> {out} ({dir_size(out) / 1e6:.1f} MB)")
        return 0
    if args.kind == "job":
        job = json.loads(Path(args.job_file).read_text())
    else:
        if not args.run_dir:
            parser.error("--run-dir is required for sft/dpo")
        cfg = load_config(args.profile, parse_sets(args.set))
        run_dir = Path(args.run_dir)
        job = sft_job(cfg, run_dir) if args.kind == "sft" else dpo_job(cfg, run_dir, args.pairs)
    info = run_job(job)
    state = PartialState()
    if state.is_main_process:  # one line per job, not per rank
        print(
            f"{job['kind']}: {info['steps']} steps in {info['train_s']} s; saved {info['saved']} to {job['out_dir']}"
            + (" (reused)" if info["reused"] else ""),
            flush=True,
        )
    # Leave together and close the process group: a rank exiting while gloo's threads are alive can abort
    # ("terminate called without an active exception") after the work is saved, failing the launch.
    state.wait_for_everyone()
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
