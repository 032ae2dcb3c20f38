"""Prompt generation on this CPU: HF ``generate`` (the reference path) against its fast path and CTranslate2.

    .venv/bin/python scripts/bench_engines.py --compute-types "" --json docs/results/cpu/bench_engines_<cpu>.json
    .venv/bin/pip install -e ".[engines]"     # CTranslate2's CPU wheel, for --compute-types (~5 min more)

The optimizer is SmolLM2-135M-Instruct (the cpu profile's base) or ``--model`` (a trained optimizer dir, e.g.
``outputs/<run>/03_sft/model``: merged once, then converted). Prompts: ShapesWorld and real queries of the DPO
pools (never held-out ones) in the profile's short instruction, generated greedily at the profile's batch and
length. Each engine's time covers generation only (loading and conversion are reported apart); tokens/s counts
the tokens each engine actually generated. Agreement: the share of prompts whose greedy text equals HF's.
``hf <dtype> fast`` is :func:`vpolib.backends.chat_generate`'s default (its decoding loop); ``hf <dtype>`` is one
plain ``generate`` call per batch. The sampled rows time stage 04's work on the same queries: ``--k`` prompts per
query at T 1.0, ``--sample-new-tokens`` at most, ``--batch // --k`` queries per call (sampled text cannot be compared
across paths: the loop draws from the same distribution with other random numbers). A
benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from vpolib.backends import GenParams, chat_generate
from vpolib.checkpoints import export_merged
from vpolib.data import clean_text, load_query_list
from vpolib.models import load_causal_lm, resolve_spec
from vpolib.paths import REPO_ROOT
from vpolib.precision import machine_precision
from vpolib.shapesworld import make_queries
from vpolib.templates import optimize_messages


def conversations(n: int) -> list[list[dict]]:
    """``n`` optimizer conversations: half ShapesWorld queries, half real DPO-pool queries (file order)."""
    shapes = [q["query"] for q in make_queries(n // 2, seed=3)]
    real, _ = load_query_list(REPO_ROOT / "data" / "vpo" / "dpo_prompts.json", "vpo")
    qs = [
        q
        for pair in zip(shapes, [clean_text(r["raw"]) for r in real[: n - n // 2]], strict=True)
        for q in pair
    ]
    return [optimize_messages(q, "short") for q in qs]


def hf_generate(
    model, tok, convs, batch: int, params: GenParams, fast: bool, seed: int = 0
) -> tuple[list[str], float, int]:
    """HF ``generate`` as the stages run it (:func:`vpolib.backends.chat_generate`): texts, seconds, tokens."""
    torch.manual_seed(seed)
    start = time.perf_counter()
    texts = [t for row in chat_generate(model, tok, convs, params, batch, fast=fast) for t in row]
    seconds = time.perf_counter() - start
    return texts, seconds, sum(len(tok(t, add_special_tokens=False)["input_ids"]) + 1 for t in texts)


def ct2_convert(src: Path, out: Path, compute_type: str) -> float:
    """Seconds to convert ``src`` into a CTranslate2 model at ``out``."""
    import ctranslate2  # optional (the ``engines`` extra): only the CTranslate2 rows need it

    start = time.perf_counter()
    ctranslate2.converters.TransformersConverter(str(src)).convert(str(out), quantization=compute_type)
    return time.perf_counter() - start


def ct2_generate(
    ct2_dir: str, tok, compute_type: str, convs, batch: int, new: int
) -> tuple[list[str], float, int]:
    """CTranslate2's ``Generator.generate_batch``, greedy, on the same token sequences HF sees."""
    import ctranslate2  # optional, as in ct2_convert

    gen = ctranslate2.Generator(
        ct2_dir, device="cpu", compute_type=compute_type, intra_threads=torch.get_num_threads()
    )
    texts_in = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in convs]
    tokens = [tok.convert_ids_to_tokens(tok(t, add_special_tokens=False)["input_ids"]) for t in texts_in]
    start = time.perf_counter()
    results = gen.generate_batch(
        tokens,
        max_batch_size=batch,
        max_length=new,
        sampling_topk=1,
        include_prompt_in_result=False,
        end_token=tok.eos_token,
    )
    seconds = time.perf_counter() - start
    ids = [r.sequences_ids[0] for r in results]
    return (
        [tok.decode(i, skip_special_tokens=True).strip() for i in ids],
        seconds,
        sum(len(i) + 1 for i in ids),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=96, help="greedy rows (sft.max_new_tokens)")
    ap.add_argument(
        "--k", type=int, default=6, help="sampled rows: prompts per query (feedback.samples_per_query)"
    )
    ap.add_argument("--sample-new-tokens", type=int, default=64, help="feedback.max_new_tokens")
    ap.add_argument(
        "--compute-types", default="float32,int8_float32,int16", help='CTranslate2 rows ("": none)'
    )
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    precision = machine_precision()
    machine, dtype = precision["cpu"], precision["dtype"]
    convs = conversations(args.n)
    src = Path(resolve_spec(args.model))
    rows, texts, sampled_rows = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        if (src / "adapter_config.json").exists():
            src = export_merged(src, Path(tmp) / "merged")
        greedy = GenParams(temperature=0.0, top_p=1.0, n=1, max_new_tokens=args.new_tokens)
        sampled = GenParams(temperature=1.0, top_p=1.0, n=args.k, max_new_tokens=args.sample_new_tokens)
        for hf_dtype in dict.fromkeys([dtype, "float32"]):
            model, tok = load_causal_lm(str(src), dtype=None if hf_dtype == "float32" else hf_dtype)
            model.eval()
            for fast in (False, True):
                name = f"hf {hf_dtype}" + (" fast" if fast else "")
                texts[name], sec, n_tok = hf_generate(model, tok, convs, args.batch, greedy, fast)
                rows[name] = {"seconds": sec, "tokens": n_tok, "tok_per_s": n_tok / sec}
                _, sec, n_tok = hf_generate(model, tok, convs, max(1, args.batch // args.k), sampled, fast)
                sampled_rows[name] = {"seconds": sec, "tokens": n_tok, "tok_per_s": n_tok / sec}
        _, tok = load_causal_lm(str(src))
        for ct in filter(None, args.compute_types.split(",")):
            out = Path(tmp) / f"ct2-{ct}"
            convert_s = ct2_convert(src, out, ct)
            name = f"ctranslate2 {ct}"
            texts[name], sec, n_tok = ct2_generate(str(out), tok, ct, convs, args.batch, args.new_tokens)
            rows[name] = {"seconds": sec, "tokens": n_tok, "tok_per_s": n_tok / sec, "convert_s": convert_s}
    for name, r in rows.items():  # greedy text equal to HF's, in the resolved dtype and in fp32
        for ref, key in ((f"hf {dtype}", "agree"), ("hf float32", "agree_fp32")):
            r[key] = sum(a == b for a, b in zip(texts[ref], texts[name], strict=True)) / len(convs)
    base = rows[f"hf {dtype}"]["seconds"]
    print(
        f"{machine['model']} ({machine['capability']}), {len(convs)} prompts, batch {args.batch}, {args.model}"
    )
    for name, r in rows.items():
        print(
            f"{name:>26}: {r['seconds']:7.1f} s  {r['tok_per_s']:7.1f} tok/s  x{base / r['seconds']:.2f} vs hf "
            f"{dtype}  greedy equal to hf {dtype}: {r['agree']:.0%}, to hf float32: {r['agree_fp32']:.0%}"
        )
    for name, r in sampled_rows.items():
        plain = sampled_rows[name.removesuffix(" fast")]["seconds"]
        print(
            f"{'sampled ' + name:>26}: {r['seconds']:7.1f} s  {r['tok_per_s']:7.1f} tok/s  "
            f"{r['tokens'] / (len(convs) * args.k):.1f} tokens a prompt  x{plain / r['seconds']:.2f} vs plain"
        )
    if args.json:
        out = {
            "machine": machine,
            "args": vars(args),
            "reference": f"hf {dtype}",
            "rows": rows,
            "sampled": sampled_rows,
        }
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
