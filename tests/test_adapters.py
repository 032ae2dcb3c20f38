"""LoRA runs save adapters, not merged models: SFT adapter, DPO adapter trained on the merged SFT adapter
(LoRA-on-LoRA), each reloading on its recorded chain with the same greedy output as the in-memory model."""

import json
import shutil

import torch
from peft import PeftModel
from tiny_records import QUERIES, pair, sft_record
from tiny_training import train_tiny, trained_lora_sft

from vpolib.checkpoints import dir_size, load_optimizer
from vpolib.examples import pair_examples, sft_examples
from vpolib.generation import generate_prompts
from vpolib.models import load_causal_lm
from vpolib.train import main as train_main
from vpolib.trainers import build_dpo_trainer, build_sft_trainer

LORA = {"r": 8, "lora_alpha": 16, "target_modules": "all-linear"}


def greedy(model, tok):
    return generate_prompts(model, tok, QUERIES[:3], n=1, temperature=0.0, max_new_tokens=8)


def test_lora_sft_then_lora_dpo_save_adapters_that_reload_on_their_chain(tiny_dir, tmp_path):
    rows, _ = sft_examples([sft_record(q) for q in QUERIES])
    sft = train_tiny(
        build_sft_trainer, tiny_dir, rows, tmp_path / "sft", LORA, max_steps=4, learning_rate=1e-2
    )
    files = {p.name for p in (tmp_path / "sft").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "train_info.json"} <= files
    assert "model.safetensors" not in files and "config.json" not in files  # no full weights
    assert sft["saved"] == "adapter" and sft["start"]["base"] == str(tiny_dir.resolve())
    assert sft["start"]["adapters"] == []
    full = dir_size(tiny_dir / "model.safetensors")
    assert sft["size_bytes"] == dir_size(tmp_path / "sft") - dir_size(tmp_path / "sft" / "train_info.json")
    assert dir_size(tmp_path / "sft" / "adapter_model.safetensors") < full / 4

    sft_model, tok = load_optimizer(tmp_path / "sft")
    base = load_causal_lm(str(tiny_dir))[0].eval()
    ids = torch.tensor([tok("a dog runs on the beach")["input_ids"]])  # [1, T]
    assert not torch.allclose(sft_model(ids).logits, base(ids).logits, atol=1e-4)  # the adapter was applied

    # DPO with LoRA from the SFT adapter: a new adapter on the in-memory merge of base + SFT adapter
    pairs, _ = pair_examples([pair(q) for q in QUERIES])
    vpo = train_tiny(
        build_dpo_trainer,
        tmp_path / "sft",
        pairs,
        tmp_path / "run" / "vpo",
        LORA,
        beta=0.1,
        max_steps=3,
        learning_rate=1e-2,
    )
    info = json.loads((tmp_path / "run" / "vpo" / "train_info.json").read_text())
    assert info["start"]["base"] == str(tiny_dir.resolve())
    assert info["start"]["adapters"] == ["../../sft"]  # relative: a moved run dir still reloads
    assert not (tmp_path / "run" / "vpo" / "model.safetensors").exists()
    assert vpo["steps"] == 3
    first = next(e for e in vpo["log_history"] if "rewards/chosen" in e)
    assert abs(first["rewards/chosen"]) < 1e-4  # step 1: policy == reference == the merged SFT model

    vpo_model, tok = load_optimizer(tmp_path / "run" / "vpo")
    # reloading on the base alone (skipping the SFT adapter) would give another model
    assert not torch.allclose(vpo_model(ids).logits, sft_model(ids).logits, atol=1e-5)
    # the in-memory model the trainer ended with: base + SFT merged, VPO adapter on top
    in_memory = PeftModel.from_pretrained(
        load_optimizer(tmp_path / "sft")[0], str(tmp_path / "run" / "vpo")
    ).eval()
    torch.testing.assert_close(vpo_model(ids).logits, in_memory(ids).logits, atol=1e-5, rtol=1e-4)
    assert greedy(vpo_model, tok) == greedy(in_memory, tok)

    # an engine that needs a plain model (vllm serve) gets the merged chain on request
    assert train_main(["merge", str(tmp_path / "run" / "vpo"), str(tmp_path / "merged")]) == 0
    plain, _ = load_causal_lm(str(tmp_path / "merged"))
    torch.testing.assert_close(plain.eval()(ids).logits, vpo_model(ids).logits)


def test_reload_matches_the_trainers_in_memory_model(tiny_dir, tmp_path):
    """Greedy generations from the reloaded adapter equal those of the PeftModel the trainer trained."""
    trainer, tok = trained_lora_sft(tiny_dir, tmp_path / "t", LORA)
    trainer.save_model(str(tmp_path / "a"))
    in_memory = trainer.model.eval()
    reloaded, tok2 = load_optimizer(tmp_path / "a")
    assert greedy(in_memory, tok) == greedy(reloaded, tok2)
    assert dir_size(tmp_path / "a") < dir_size(tiny_dir) / 2


def test_full_dpo_from_a_lora_sft_adapter_uses_the_merged_sft_as_reference(tiny_dir, tmp_path):
    """TRL reloads a full DPO's reference from the model's path: the merge is written to <out>_start for
    that, then removed; the reference is the SFT merge (zero reward at step 1), not the bare base."""
    rows, _ = sft_examples([sft_record(q) for q in QUERIES])
    train_tiny(build_sft_trainer, tiny_dir, rows, tmp_path / "sft", LORA, max_steps=3, learning_rate=1e-2)
    pairs, _ = pair_examples([pair(q) for q in QUERIES])
    vpo = train_tiny(
        build_dpo_trainer,
        tmp_path / "sft",
        pairs,
        tmp_path / "vpo",
        None,
        beta=0.1,
        max_steps=2,
        learning_rate=1e-3,
    )
    assert vpo["saved"] == "full" and (tmp_path / "vpo" / "model.safetensors").exists()
    assert not (tmp_path / "vpo_start").exists()
    first = next(e for e in vpo["log_history"] if "rewards/chosen" in e)
    assert abs(first["rewards/chosen"]) < 1e-4
    model, tok = load_optimizer(tmp_path / "vpo")
    assert len(greedy(model, tok)) == 3


def test_a_moved_run_dir_still_loads_its_chain(tmp_path):
    """Full SFT and a LoRA DPO adapter on it, both inside one run dir: the run dir moves, the chain follows."""
    run = tmp_path / "run"
    model, tok = load_causal_lm("tiny-llama")
    model.save_pretrained(run / "03_sft" / "model")
    tok.save_pretrained(run / "03_sft" / "model")
    pairs, _ = pair_examples([pair(q) for q in QUERIES])
    train_tiny(
        build_dpo_trainer,
        run / "03_sft" / "model",
        pairs,
        run / "05_dpo" / "model",
        LORA,
        beta=0.1,
        max_steps=2,
        learning_rate=1e-2,
    )
    before = greedy(*load_optimizer(run / "05_dpo" / "model"))
    shutil.move(run, tmp_path / "moved")
    assert greedy(*load_optimizer(tmp_path / "moved" / "05_dpo" / "model")) == before
