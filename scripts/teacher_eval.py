"""Compare teachers for the real queries of the SFT set on a dev sample, never the held-out set.

The dev sample is real queries from the END of the SFT pool (stage 02 takes the SFT set's real queries from
its start). Each teacher writes one prompt per query; the run's rule judge scores it. Printed and written as
JSON per teacher: judge pass rate (all and per principle), words kept (share of the query's content words the
prompt keeps: the judge's coverage), words per prompt, a fluency proxy (mean per-token negative log-likelihood
of the prompt under SmolLM2-135M-Instruct, lower is more fluent) and seconds.

    python scripts/teacher_eval.py --run-dir outputs/dev --n 100 --json docs/results/cpu/teacher_eval.json

Teachers: ``llm`` (SmolLM2 few-shot with the shortest VBench GPT-4o example, stage 02's LLM teacher),
``llm-rag`` (the same with the nearest VBench query's GPT-4o expansion as the shot, by MiniLM embedding),
``compose`` (vpolib.compose, templated, no model), and ``raw`` (the query itself, for scale).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from vpolib.backends import GenParams, make_backend
from vpolib.compose import compose_prompt
from vpolib.config import load_config
from vpolib.io import read_jsonl, write_json
from vpolib.judge import build_judge, load_embedder
from vpolib.models import load_causal_lm
from vpolib.precision import cpu_info
from vpolib.teachers import few_shot_examples
from vpolib.templates import PRINCIPLES, few_shot_messages


def nll_per_token(texts: list[str], model, tok, batch: int = 16) -> list[float]:
    """Mean negative log-likelihood per token of each text (the fluency proxy)."""
    out = []
    for i in range(0, len(texts), batch):
        enc = tok([t or "." for t in texts[i : i + batch]], return_tensors="pt", padding=True)
        with torch.inference_mode():
            logits = model(**enc).logits[:, :-1].float()  # [B, T-1, V]
        target, mask = enc["input_ids"][:, 1:], enc["attention_mask"][:, 1:].float()  # [B, T-1]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")  # [B, T-1]
        out += ((nll * mask).sum(1) / mask.sum(1).clamp(min=1)).tolist()
    return out


def llm_prompts(queries, shots, cfg) -> list[str | None]:
    """SmolLM2 few-shot: ``shots[i]`` is the example list for query i."""
    rcfg = cfg.refine
    backend = make_backend(rcfg.teacher_backend, rcfg.batch_size, dtype=rcfg.teacher_dtype)
    params = GenParams(
        temperature=rcfg.temperature, top_p=rcfg.top_p, n=1, max_new_tokens=rcfg.max_new_tokens
    )
    convs = [few_shot_messages(q["query"], s) for q, s in zip(queries, shots, strict=True)]
    return [t[0] if t else None for t in backend.generate(convs, params)]


def nearest_shots(queries, vbench, k: int = 1) -> list[list[tuple[str, str]]]:
    """For each query, the ``k`` VBench queries nearest by MiniLM, with their GPT-4o expansions."""
    rows = [r for r in vbench if r.get("gpt4o")]
    embed = load_embedder()
    sims = embed([q.get("content") or q["query"] for q in queries]) @ embed([r["query"] for r in rows]).T
    return [[(rows[j]["query"], rows[j]["gpt4o"]) for j in np.argsort(-s)[:k]] for s in sims]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, required=True, help="a run whose stage 01 has finished")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--teachers", default="raw,compose,llm,llm-rag")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    cfg = load_config(args.profile)
    torch.manual_seed(cfg.seed)
    pool = read_jsonl(args.run_dir / "01_data" / "splits" / "sft_pool.jsonl")[0]
    queries = [r for r in pool if r.get("source") != "shapes"][-args.n :]
    vbench = read_jsonl(args.run_dir / "01_data" / "splits" / "vbench_pairs.jsonl")[0]
    judge = build_judge(cfg)
    scorer, tok = load_causal_lm("smollm2-135m-instruct")
    tok.padding_side = "right"
    results, examples = {}, {}
    for name in args.teachers.split(","):
        t0 = time.perf_counter()
        if name == "raw":
            prompts = [q["query"] for q in queries]
        elif name == "compose":
            prompts = [compose_prompt(q, cfg.seed) for q in queries]
        elif name == "llm":
            prompts = llm_prompts(queries, [few_shot_examples(vbench, 1)] * len(queries), cfg)
        elif name == "llm-rag":
            prompts = llm_prompts(queries, nearest_shots(queries, vbench), cfg)
        else:
            raise SystemExit(f"unknown teacher {name!r}")
        seconds = time.perf_counter() - t0
        verdicts = judge.judge([{**q, "prompt": p or ""} for q, p in zip(queries, prompts, strict=True)])
        nll = nll_per_token([p or "" for p in prompts], scorer, tok)
        results[name] = {
            "n": len(queries),
            "pass_all": round(float(np.mean([bool(v.passed) for v in verdicts])), 3),
            **{
                f"pass_{p}": round(float(np.mean([bool(v.principles[p]) for v in verdicts])), 3)
                for p in PRINCIPLES
            },
            "words_kept": round(float(np.mean([v.details.get("coverage", 1.0) for v in verdicts])), 3),
            "words": round(float(np.mean([len((p or "").split()) for p in prompts])), 1),
            "nll_per_token": round(float(np.mean(nll)), 3),
            "seconds": round(seconds, 1),
        }
        examples[name] = [
            {"query": q["query"], "prompt": p} for q, p in list(zip(queries, prompts, strict=True))[:5]
        ]
        print(name, json.dumps(results[name]), flush=True)
    if args.json:
        write_json(
            args.json,
            {
                "machine": cpu_info(),
                "dev": f"the last {args.n} real queries of the SFT pool",
                "teachers": results,
                "examples": examples,
            },
        )


if __name__ == "__main__":
    main()
