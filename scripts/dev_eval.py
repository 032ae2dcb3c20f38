"""Choose recipes on a dev split, never on the held-out set.

Trains an SFT (``--train sft``) or DPO (``--train dpo``) variant from a finished run dir's data with config
overrides, or only evaluates existing models (``--models``), then scores each model's greedy prompts on
ShapesWorld queries of the DPO pool that stage 04 does not render (the first ``feedback.n_queries`` are
04's; the rest are this dev split). Prints the mean video reward with its 95% CI and the per-kind pass rates.

    python scripts/dev_eval.py --run-dir outputs/cpu-x --train sft --out /tmp/dev/lr1e-3 \
        --set sft.trainer.learning_rate=1e-3
    python scripts/dev_eval.py --run-dir outputs/cpu-x --train dpo --pairs /tmp/video_pairs.jsonl --out /tmp/dev/v
    python scripts/dev_eval.py --run-dir outputs/cpu-x --models outputs/cpu-x/03_sft/model
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from vpolib import examples, generation, preference, trainers
from vpolib.checkpoints import load_optimizer
from vpolib.config import load_config
from vpolib.io import read_jsonl
from vpolib.noise import video_seed
from vpolib.run import parse_sets
from vpolib.video import make_video_backend


def dev_queries(run_dir: Path, cfg, n: int) -> list[dict]:
    return preference.dev_queries(
        read_jsonl(run_dir / "01_data" / "splits" / "dpo_pool.jsonl")[0], cfg.feedback, n
    )


def train(run_dir: Path, cfg, kind: str, out: Path, pairs: Path | None = None) -> Path:
    if kind == "sft":
        rows, _ = examples.sft_examples(read_jsonl(run_dir / "02_refine" / "sft.jsonl")[0])
        tr, ev = examples.capped_split(
            rows, cfg.sft.eval_fraction, cfg.seed, cfg.sft.max_examples, cfg.sft.max_eval
        )
        build, base, section = trainers.build_sft_trainer, cfg.sft.base_model, cfg.sft
    else:
        rows, _ = examples.pair_examples(read_jsonl(pairs or run_dir / "04_feedback" / "pairs.jsonl")[0])
        tr, ev = examples.capped_split(
            rows, cfg.dpo.eval_fraction, cfg.seed, cfg.dpo.max_pairs, cfg.dpo.max_eval
        )
        build, base, section = trainers.build_dpo_trainer, run_dir / "03_sft" / "model", cfg.dpo
    info = trainers.train_stage(build, base, tr, ev, section, out, cfg.seed)
    print(f"trained {kind}: {info['steps']} steps in {info['train_s']} s ({len(tr)} examples)", flush=True)
    return out


def evaluate(model_dir: Path, queries: list[dict], cfg, backend) -> dict:
    model, tok = load_optimizer(model_dir, device=cfg.device, dtype=cfg.sft.dtype)
    t0 = time.perf_counter()
    outs = generation.generate_prompts(
        model, tok, [q["query"] for q in queries], n=1, temperature=0.0,
        max_new_tokens=cfg.feedback.max_new_tokens, batch_size=cfg.generation_batch, instruction=cfg.instruction,
        sources=["shapes"] * len(queries),
    )  # fmt: skip
    gen_s = time.perf_counter() - t0
    prompts = [o[0] for o in outs]
    scores, passed, total = [], Counter(), Counter()
    for start in range(0, len(queries), 32):
        part = queries[start : start + 32]
        videos = backend.render(prompts[start : start + 32], [video_seed(cfg.seed, q["id"]) for q in part])
        for q, video in zip(part, videos, strict=True):
            questions = backend.checklist(q["query"])
            res = backend.score(questions, video)
            scores.append(res["score"] / res["max_score"])
            for x in questions:
                total[x.kind] += 1
                passed[x.kind] += res["answers"][str(x.id)] == "yes"
    rng = np.random.default_rng(0)
    boot = [np.mean(rng.choice(scores, len(scores))) for _ in range(1000)]
    return {
        "model": str(model_dir),
        "n": len(scores),
        "reward": round(float(np.mean(scores)), 4),
        "ci": [round(float(np.percentile(boot, 2.5)), 4), round(float(np.percentile(boot, 97.5)), 4)],
        "pass": {k: round(passed[k] / total[k], 2) for k in sorted(total)},
        "words": round(float(np.mean([len(p.split()) for p in prompts])), 1),
        "generation_s": round(gen_s, 1),
        "examples": [[q["query"], p] for q, p in zip(queries[:4], prompts[:4], strict=True)],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--profile", default="cpu")
    p.add_argument("--train", choices=["sft", "dpo"])
    p.add_argument("--out", type=Path, help="where the trained variant goes")
    p.add_argument("--pairs", type=Path, help="DPO pairs file (default: the run's 04_feedback/pairs.jsonl)")
    p.add_argument("--models", nargs="*", default=[], type=Path)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = p.parse_args()
    cfg = load_config(a.profile, parse_sets(a.set))
    models = list(a.models) + ([train(a.run_dir, cfg, a.train, a.out, a.pairs)] if a.train else [])
    queries = dev_queries(a.run_dir, cfg, a.n)
    backend = make_video_backend(cfg)
    for m in models:
        print(json.dumps(evaluate(m, queries, cfg, backend)), flush=True)


if __name__ == "__main__":
    main()
