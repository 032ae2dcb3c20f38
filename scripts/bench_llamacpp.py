"""HF generate (batched, bf16) vs the llama.cpp server on the same SmolLM2 weights (a benchmark, not a test).

    .venv/bin/python scripts/bench_llamacpp.py                 # 32 queries x 64 new tokens, 2 threads

Exports SmolLM2-135M-Instruct to GGUF (F16 and Q8_0, :mod:`vpolib.gguf_export`), then samples one prompt per
query with HF ``generate`` in one batch and with the xllamacpp server at 8 and 16 parallel slots, and prints
generated tokens/s for each. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import tempfile
import time
from pathlib import Path

import gguf
import numpy as np
import torch
from openai import OpenAI

from vpolib import serve
from vpolib.gguf_export import export_gguf, hf_name, permute
from vpolib.models import load_causal_lm
from vpolib.templates import optimize_messages


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=64)
    args = ap.parse_args()
    objects = [
        f"{c} {s}" for c in ("red", "blue", "green", "violet") for s in ("ball", "square", "cube", "disc")
    ]
    chats = [optimize_messages(f"a {o} moving {d}", "short") for o in objects for d in ("left", "up")]  # 32
    torch.set_num_threads(args.threads)
    model, tok = load_causal_lm("smollm2-135m-instruct")
    tok.padding_side = "left"
    enc = tok.apply_chat_template(
        chats, add_generation_prompt=True, return_tensors="pt", return_dict=True, padding=True
    )
    t0 = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.generate(
            **enc, max_new_tokens=args.new_tokens, do_sample=True, temperature=0.9, top_p=0.9
        )
    n = int((out[:, enc["input_ids"].shape[1] :] != tok.pad_token_id).sum())
    print(f"HF generate, batch {len(chats)}, bf16: {n / (time.perf_counter() - t0):.0f} tok/s", flush=True)

    tmp = Path(tempfile.mkdtemp())
    f16 = export_gguf(model, tmp / "f16.gguf")
    q8 = (
        tmp / "q8.gguf"
    )  # the same tensors as Q8_0 (the export writes F16; requantised here for the comparison)
    reader, writer = gguf.GGUFReader(str(f16)), gguf.GGUFWriter(str(q8), arch="llama")
    for key, field in reader.fields.items():
        if not key.startswith("GGUF.") and key not in ("general.architecture", "general.file_type"):
            writer.add_key_value(
                key, field.contents(), field.types[0], field.types[1] if len(field.types) > 1 else None
            )
    state = {k: v.float().numpy() for k, v in model.state_dict().items()}
    for t in reader.tensors:
        w = state[hf_name(t.name)]
        part = t.name.split(".")[2] if t.name.startswith("blk.") else ""
        if part in ("attn_q", "attn_k"):
            w = permute(
                w, model.config.num_attention_heads if part == "attn_q" else model.config.num_key_value_heads
            )
        if w.ndim == 1:
            writer.add_tensor(t.name, w.astype(np.float32))
        else:
            q = gguf.quants.quantize(w.astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(t.name, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    for path in (f16, q8):
        for slots in (8, 16):
            server = serve.start(path, port=0, threads=args.threads, parallel=slots, ctx=1024)
            client = OpenAI(base_url=f"{server.listening_address}/v1", api_key="none")

            def one(chat, client=client):
                r = client.chat.completions.create(
                    model="x", messages=chat, max_tokens=args.new_tokens, temperature=0.9, top_p=0.9, seed=1
                )
                return r.usage.completion_tokens

            t0 = time.perf_counter()
            with cf.ThreadPoolExecutor(slots) as pool:
                n = sum(pool.map(one, chats))
            print(
                f"llama.cpp {path.stem}, {slots} slots: {n / (time.perf_counter() - t0):.0f} tok/s",
                flush=True,
            )
            del server
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
