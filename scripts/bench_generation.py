"""Batched vs per-query generation throughput of the local backend (a benchmark, not a test).

    .venv/bin/python scripts/bench_generation.py                      # the cpu profile's teacher model
    .venv/bin/python scripts/bench_generation.py --model tiny-llama --n 8

Generates the optimization instruction for ``--n`` real queries once one at a time and once in
batches of ``--batch``, with the same sampling parameters, and prints tokens/s for both and the speed-up.
"""

from __future__ import annotations

import argparse
import time

from vpolib.backends import GenParams, LocalBackend
from vpolib.config import load_config
from vpolib.io import read_jsonl
from vpolib.paths import data_root
from vpolib.templates import optimize_messages


def queries(n: int) -> list[str]:
    """``n`` VBench short prompts (shipped data, always present)."""
    cfg = load_config("cpu")
    path = data_root(cfg.data.root) / cfg.data.vbench_dir / "all_category.txt"
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][:n]


def timed(backend: LocalBackend, convs: list[list[dict]], params: GenParams) -> tuple[float, int]:
    """(seconds, generated tokens) for generating every conversation."""
    start = time.perf_counter()
    out = backend.generate(convs, params)
    seconds = time.perf_counter() - start
    return seconds, len(out) * params.max_new_tokens  # fixed length, see main()


def main() -> None:
    default = load_config("cpu").refine.teacher_backend.removeprefix("local:")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=default, help="a vpolib.models spec or model dir")
    ap.add_argument("--n", type=int, default=16, help="conversations")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=160, help="about a 100-word prompt")
    ap.add_argument(
        "--queries-file", help="optional JSONL with a 'query' field (e.g. 01_data/splits/heldout.jsonl)"
    )
    ap.add_argument(
        "--threads", type=int, help="torch threads (1 is faster on a machine shared with other jobs)"
    )
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    texts = (
        [r["query"] for r in read_jsonl(args.queries_file)[0]][: args.n]
        if args.queries_file
        else queries(args.n)
    )
    convs = [optimize_messages(q) for q in texts]
    params = GenParams(
        temperature=0.0, top_p=1.0, n=1, max_new_tokens=args.max_new_tokens
    )  # greedy: same work
    backend = LocalBackend.from_spec(args.model, batch_size=1)
    backend.generate(convs[:1], GenParams(temperature=0.0, max_new_tokens=4))  # warm-up
    # Fixed length (EOS suppressed until max_new_tokens): both runs do exactly the same work.
    backend.model.generation_config.min_new_tokens = args.max_new_tokens
    print(f"model {args.model}: {len(convs)} conversations, max_new_tokens {args.max_new_tokens}", flush=True)
    single_s, single_tok = timed(backend, convs, params)
    print(
        f"per-query: {single_s:7.1f} s  {single_tok / single_s:7.1f} tok/s  {len(convs) / single_s:5.2f} conv/s",
        flush=True,
    )
    backend.batch_size = args.batch
    batch_s, batch_tok = timed(backend, convs, params)
    print(
        f"batch {args.batch:>3}: {batch_s:7.1f} s  {batch_tok / batch_s:7.1f} tok/s  {len(convs) / batch_s:5.2f} conv/s"
    )
    print(f"speed-up: {single_s / batch_s:.1f}x")


if __name__ == "__main__":
    main()
