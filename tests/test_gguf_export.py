"""A trained optimizer exported to GGUF: llama.cpp serving it decodes what transformers decodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from openai import OpenAI

from vpolib.gguf_export import export_gguf, hf_name, permute
from vpolib.models import load_causal_lm
from vpolib.serve import ServerProcess
from vpolib.templates import optimize_messages


def test_names_and_the_rotary_permutation_by_hand():
    assert hf_name("blk.3.attn_q.weight") == "model.layers.3.self_attn.q_proj.weight"
    assert hf_name("token_embd.weight") == "model.embed_tokens.weight"
    rows = np.arange(8).reshape(8, 1)  # 2 heads of 4 rows: each head's halves [0 1 | 2 3] interleave
    assert permute(rows, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_a_model_of_another_shape_is_refused(tmp_path):
    model, _ = load_causal_lm("tiny-llama")
    with pytest.raises(ValueError, match="not a SmolLM2 model"):
        export_gguf(model, tmp_path / "tiny.gguf")


def test_llama_cpp_serving_the_export_decodes_like_transformers(tmp_path):
    """A changed SmolLM2 (as training changes it) exported, served by the xllamacpp server, greedy-decoded:
    the same text as transformers' greedy decoding of the same weights."""
    model, tok = load_causal_lm("smollm2-135m-instruct")
    torch.manual_seed(0)
    with (
        torch.no_grad()
    ):  # a visible change in every attention block (q and k included): not the shipped GGUF
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.mlp.up_proj):
                proj.weight.add_(0.01 * torch.randn_like(proj.weight))
    path = export_gguf(model, tmp_path / "changed.gguf")
    chats = [optimize_messages(q, "short") for q in ["a red ball bouncing", "violet square moving right"]]
    expected = []
    for chat in chats:
        enc = tok.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        out = model.generate(**enc, max_new_tokens=24, do_sample=False)
        expected.append(tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip())
    with ServerProcess(path, threads=1, parallel=1, ctx=1024) as server:
        client = OpenAI(base_url=server.base_url, api_key="none")
        got = [
            client.chat.completions.create(model=server.model, messages=chat, max_tokens=24, temperature=0)
            .choices[0]
            .message.content.strip()
            for chat in chats
        ]
    assert got == expected
