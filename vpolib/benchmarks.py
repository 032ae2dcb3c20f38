"""Benchmarks on the full profile: VBench's prompt suite through VBench's own toolkit (an optional extra, in its
own environment), and MonetBench-style prompt files through the VisionReward job.

The protocol (VBench issue #89; its leaderboard marks such rows "prompt optimized"): each method REWRITES the
benchmark prompt to sample the video, and the video is scored against the ORIGINAL prompt. VBench reads that
prompt from the file name (``{original prompt}-{index}.mp4``, 5 videos per prompt); the VisionReward job builds
its checklist from the original prompt (the ``query`` of each row).

    python -m vpolib.benchmarks prepare --run-dir RUN --profile full          # rewrites, one dir per method
    accelerate launch -m vpolib.video render --stage-dir RUN/06_evaluate/vbench/<method> --profile full
    accelerate launch -m vpolib.visionreward --stage-dir RUN/06_evaluate/vbench/<method>   # own venv
    python -m vpolib.benchmarks vbench --run-dir RUN --profile full           # VBench layout + its toolkit
    python -m vpolib.benchmarks collect --run-dir RUN --profile full          # -> 06_evaluate/benchmarks.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

from vpolib.checkpoints import load_optimizer
from vpolib.config import load_config
from vpolib.generation import generate_prompts
from vpolib.io import read_jsonl, write_json, write_jsonl
from vpolib.paths import data_root
from vpolib.run import parse_sets

STAGE = "06_evaluate"


def load_prompts(
    bench: str, vbench_dir: str | Path, monetbench_file: str | None, limit: int | None
) -> list[dict]:
    """``[{"id", "query", "dimension"}]``: VBench's 946 prompts (``VBench_full_info.json``) or one prompt per
    line of a MonetBench-style file."""
    if bench == "vbench":
        info = json.loads((Path(vbench_dir) / "VBench_full_info.json").read_text())
        rows = [
            {"id": f"vbench-{i:04d}", "query": e["prompt_en"], "dimension": e["dimension"]}
            for i, e in enumerate(info)
        ]
    elif bench == "monetbench":
        if not monetbench_file:
            raise ValueError("analysis.monetbench_file is not set: MonetBench's prompts are not shipped here")
        lines = [x.strip() for x in Path(monetbench_file).read_text().splitlines() if x.strip()]
        rows = [{"id": f"monet-{i:04d}", "query": q, "dimension": []} for i, q in enumerate(lines)]
    else:
        raise ValueError(f"benchmark must be vbench or monetbench, got {bench!r}")
    return rows[:limit]


def render_rows(prompts: list[dict], rewrites: list[str], samples: int) -> list[dict]:
    """The render job's rows: one per (prompt, sample), so each sample gets its own seed; ``query`` stays the
    original prompt (what every score is measured against), ``prompts`` holds the method's rewrite."""
    return [
        {"id": f"{p['id']}-{i}", "query": p["query"], "prompts": [text], "sample": i}
        for p, text in zip(prompts, rewrites, strict=True)
        for i in range(samples)
    ]


def rewrite(method: str, cfg, run_dir: Path, queries: list[str]) -> list[str]:
    """One greedy prompt per query from a method: ``raw`` (the query itself), ``sft`` / ``vpo`` (03's / 05's
    model, on ``cfg.device`` in the stage's dtype)."""
    if method == "raw":
        return list(queries)
    stage_cfg, model_dir = {"sft": (cfg.sft, "03_sft/model"), "vpo": (cfg.dpo, "05_dpo/model")}[method]
    model, tokenizer = load_optimizer(run_dir / model_dir, device=cfg.device, dtype=stage_cfg.dtype)
    out = generate_prompts(
        model,
        tokenizer,
        queries,
        n=1,
        temperature=0,
        max_new_tokens=stage_cfg.max_new_tokens,
        batch_size=cfg.generation_batch,
        instruction=cfg.instruction,
    )
    return [texts[0] for texts in out]


def bench_dir(run_dir: Path, bench: str, method: str) -> Path:
    return Path(run_dir) / STAGE / bench / method


def prepare(cfg, run_dir: Path, bench: str) -> dict[str, Path]:
    """Each method's rewrites as a render job's ``prompts.jsonl`` (kept if already written)."""
    a = cfg.analysis
    prompts = load_prompts(
        bench, data_root(cfg.data.root) / cfg.data.vbench_dir, a.monetbench_file, a.benchmark_limit
    )
    out = {}
    for method in a.benchmark_methods:
        path = bench_dir(run_dir, bench, method) / "prompts.jsonl"
        if not path.exists():
            texts = rewrite(method, cfg, Path(run_dir), [p["query"] for p in prompts])
            write_jsonl(path, render_rows(prompts, texts, a.benchmark_samples))
        out[method] = path
    return out


def vbench_layout(stage_dir: Path, out_dir: Path) -> list[Path]:
    """VBench's standard layout from the render job's log: ``{original prompt}-{sample}.mp4`` per video."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for rec in read_jsonl(Path(stage_dir) / "renders.jsonl")[0]:
        name = f"{rec['query']}-{rec['id'].rsplit('-', 1)[1]}.mp4"
        if "/" in name or len(name.encode()) > 255:
            raise ValueError(f"not a valid file name for VBench's layout: {name!r}")
        target = out_dir / name
        if not target.exists():
            shutil.copyfile(Path(stage_dir) / rec["video"], target)
        files.append(target)
    return files


def vbench_commands(
    videos: Path, dimensions: list[str], out_dir: Path, full_info: Path, vbench: str
) -> list[list]:
    """One ``vbench evaluate`` per dimension (its CLI, standard prompt-suite mode)."""
    return [
        [vbench, "evaluate", "--videos_path", str(videos), "--dimension", d, "--output_path", str(out_dir),
         "--full_json_dir", str(full_info)]
        for d in dimensions
    ]  # fmt: skip


def read_vbench(out_dir: Path) -> dict[str, float]:
    """``{dimension: score}`` from VBench's ``*_eval_results.json`` files (``{dimension: [score, per video]}``)."""
    scores = {}
    for path in sorted(Path(out_dir).glob("*_eval_results.json")):
        for dim, value in json.loads(path.read_text()).items():
            scores[dim] = float(value[0] if isinstance(value, list) else value)
    return scores


def visionreward_summary(stage_dir: Path) -> dict | None:
    """Mean VisionReward score (against the original prompt) of one method's videos, or None if not scored."""
    path = Path(stage_dir) / "scores.jsonl"
    if not path.exists():
        return None
    rows = read_jsonl(path)[0]
    return {"videos": len(rows), "visionreward": sum(r["score"] for r in rows) / max(len(rows), 1)}


def collect(cfg, run_dir: Path) -> dict:
    """Every benchmark x method result found in the run dir, written to ``06_evaluate/benchmarks.json``."""
    out = {}
    for bench in cfg.analysis.benchmarks:
        for method in cfg.analysis.benchmark_methods:
            stage = bench_dir(run_dir, bench, method)
            row = {"method": method, **(visionreward_summary(stage) or {})}
            row.update(read_vbench(stage / "vbench_results"))
            out.setdefault(bench, []).append(row)
    write_json(Path(run_dir) / STAGE / "benchmarks.json", out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vpolib.benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=["prepare", "vbench", "collect"])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--profile", default="full")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    cfg, run_dir = load_config(args.profile, parse_sets(args.set)), Path(args.run_dir)
    if args.step == "prepare":
        for bench in cfg.analysis.benchmarks:
            for method, path in prepare(cfg, run_dir, bench).items():
                print(f"{bench}/{method}: {path}")
    elif args.step == "vbench":
        full_info = data_root(cfg.data.root) / cfg.data.vbench_dir / "VBench_full_info.json"
        dims = sorted({d for e in json.loads(full_info.read_text()) for d in e["dimension"]})
        for method in cfg.analysis.benchmark_methods:
            stage = bench_dir(run_dir, "vbench", method)
            videos = stage / "vbench_videos"
            print(f"vbench/{method}: {len(vbench_layout(stage, videos))} videos in {videos}", flush=True)
            for cmd in vbench_commands(
                videos, dims, stage / "vbench_results", full_info, cfg.analysis.vbench_command
            ):
                print("$", " ".join(cmd), flush=True)
                subprocess.run(cmd, check=True)
    else:
        print(json.dumps(collect(cfg, run_dir), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
