"""SFT: data conversion, prompt masking, a few training steps (full and LoRA), save/reload/generate,
and the full profile's trainer knobs on an architecture-identical tiny Llama-3."""

import math
import re

import pytest
import torch
from tiny_records import CPU, QUERIES, sft_record
from tiny_training import on_cpu, trained_lora_sft
from transformers import LlamaForCausalLM

from vpolib.checkpoints import load_optimizer, save_optimizer, train_info
from vpolib.examples import heldout_sample, sft_examples, split
from vpolib.generation import generate_heldout, generate_prompts
from vpolib.io import write_jsonl
from vpolib.judge import RuleJudge, judge_table
from vpolib.models import llama_config, load_causal_lm
from vpolib.profiles import read_profile
from vpolib.trainers import CPU_SFT_ATTENTION, LogitsSFTTrainer, build_sft_trainer, train_and_save


def test_sft_examples_split_prompt_and_completion_and_skip_bad_records():
    bad = [
        {"messages": []},
        {"messages": [{"role": "user", "content": "q"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}]},
        {},
        {"messages": ["garbled", {"role": "assistant", "content": "x"}]},
        {"messages": "not a list"},
    ]
    rows, skipped = sft_examples([sft_record("a red car"), *bad])
    assert skipped == 6
    assert rows == [
        {
            "prompt": [{"role": "user", "content": "Expand: a red car"}],
            "completion": [{"role": "assistant", "content": "A cinematic shot of a red car, soft light."}],
            "query": "a red car",
            "source": None,
        }
    ]


def test_split_is_deterministic_and_disjoint():
    train, evaluation = split(list(range(20)), 0.1, seed=1)
    assert len(evaluation) == 2 and len(train) == 18 and not set(train) & set(evaluation)
    assert split(list(range(20)), 0.1, seed=1) == (train, evaluation)
    assert split([1, 2], 0.5, 0)[1] and split([1], 0.5, 0) == ([1], [])  # never all rows to eval
    assert split([1, 2, 3], 0.0, 0)[1] == []


def test_heldout_sample_alternates_sources_and_skips_empty_queries():
    recs = [{"id": f"d{i}", "source": "dpo", "query": f"q{i}"} for i in range(3)]
    recs += [
        {"id": "s0", "source": "shapes", "query": "red circle"},
        {"id": "e", "source": "dpo", "query": " "},
    ]
    assert [r["id"] for r in heldout_sample(recs, 3)] == ["d0", "s0", "d1"]
    assert [r["id"] for r in heldout_sample(recs, None)] == ["d0", "s0", "d1", "d2"]


def test_trl_masks_the_prompt_tokens(tiny_dir):
    model, tok = load_causal_lm(str(tiny_dir))
    rows, _ = sft_examples([sft_record("a red car")])
    trainer = build_sft_trainer(model, tok, rows, [], {**CPU, "max_steps": 1}, "/tmp/unused-sft", seed=0)
    ex = trainer.train_dataset[0]
    prompt_len = len(
        tok.apply_chat_template(rows[0]["prompt"], add_generation_prompt=True, return_dict=False)
    )
    assert all(lab == -100 for lab in ex["labels"][:prompt_len])
    in_loss = [t for t, lab in zip(ex["input_ids"], ex["labels"], strict=True) if lab != -100]
    assert len(in_loss) == len(ex["input_ids"]) - prompt_len
    assert tok.decode(in_loss).startswith("A cinematic shot of a red car, soft light.<|im_end|>")


def test_cpu_sft_attention_is_eager_unless_named_and_gives_sdpas_loss(tiny_dir):
    """On a CPU SFT attends eagerly (vpolib.trainers.CPU_SFT_ATTENTION), whether TRL loads the model from its path
    or gets it loaded; a profile's ``model_init_kwargs`` still picks sdpa. Both give one padded batch the same loss."""
    _, tok = load_causal_lm(str(tiny_dir))
    rows, _ = sft_examples([sft_record(q) for q in QUERIES[:3]])
    losses = {}
    for named in (None, "sdpa"):
        knobs = {
            **CPU,
            "max_steps": 1,
            **({"model_init_kwargs": {"attn_implementation": named}} if named else {}),
        }
        trainer = build_sft_trainer(str(tiny_dir), tok, rows, [], knobs, "/tmp/unused-sft", seed=0)
        assert trainer.model.config._attn_implementation == (named or CPU_SFT_ATTENTION) == (named or "eager")
        batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
        with torch.no_grad():
            losses[named] = trainer.compute_loss(trainer.model, dict(batch)).item()
    assert losses[None] == pytest.approx(losses["sdpa"], rel=1e-5)
    loaded, _ = load_causal_lm(str(tiny_dir))
    build_sft_trainer(loaded, tok, rows, [], {**CPU, "max_steps": 1}, "/tmp/unused-sft", seed=0)
    assert loaded.config._attn_implementation == "eager"


@pytest.mark.parametrize("every_position", [False, True], ids=["completion-head", "every-position"])
def test_cpu_loss_from_the_logits_equals_trls_fused_head(tiny_dir, monkeypatch, every_position):
    """On a CPU the loss comes from the logits (LogitsSFTTrainer), the LM head on the completion's positions (or, as
    before, on every position): the same number, gradient and token accuracy as TRL's fused LM head on one fp32
    batch of three rows padded to different lengths (prompts masked)."""
    model, tok = load_causal_lm(str(tiny_dir))
    rows, _ = sft_examples([sft_record(q) for q in QUERIES[:3]])
    trainer = build_sft_trainer(model, tok, rows, [], {**CPU, "max_steps": 1}, "/tmp/unused-sft", seed=0)
    assert type(trainer) is LogitsSFTTrainer
    monkeypatch.setattr(trainer, "every_position", every_position)
    model.train()
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    assert (batch["labels"] == -100).any() and (batch["labels"] != -100).any()
    results = []
    for compute_loss in (
        LogitsSFTTrainer.compute_loss,
        super(LogitsSFTTrainer, trainer).compute_loss.__func__,
    ):
        trainer._metrics["train"].clear()
        model.zero_grad()
        loss = compute_loss(trainer, model, dict(batch))
        loss.backward()
        grad = model.model.embed_tokens.weight.grad.clone()
        results.append((loss.item(), grad, trainer._metrics["train"]["mean_token_accuracy"][0]))
    (ours, g_ours, acc_ours), (trl, g_trl, acc_trl) = results
    assert ours == pytest.approx(trl, rel=1e-5)
    assert torch.allclose(g_ours, g_trl, atol=1e-6, rtol=1e-4)
    assert acc_ours == pytest.approx(acc_trl)


@pytest.mark.parametrize(
    "lora", [None, {"r": 8, "lora_alpha": 16, "target_modules": "all-linear"}], ids=["full", "lora"]
)
def test_sft_loss_goes_down_and_the_saved_model_generates(tiny_dir, tmp_path, lora):
    rows, _ = sft_examples([sft_record(q) for q in QUERIES])
    knobs = {**CPU, "max_steps": 12, "learning_rate": 3e-3 if lora else 1e-3}
    info = train_and_save(build_sft_trainer, tiny_dir, rows, rows[:2], knobs, lora, tmp_path / "m", seed=0)
    losses = [e["loss"] for e in info["log_history"] if "loss" in e]
    assert len(losses) == 12 and all(math.isfinite(x) for x in losses)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5
    assert info["steps"] == 12 and not info["reused"]
    if lora:
        assert info["trainable"] < 100_000  # adapters only
    # LoRA: the adapter only (reloaded on its base, merged in memory); full: a plain model dir
    model, tok = load_optimizer(tmp_path / "m")
    assert (tmp_path / "m" / "adapter_config.json").exists() == bool(lora)
    assert (tmp_path / "m" / "model.safetensors").exists() == (not lora)
    out = generate_prompts(model, tok, QUERIES[:3], n=2, max_new_tokens=6)
    assert len(out) == 3 and all(len(o) == 2 and all(isinstance(s, str) for s in o) for o in out)
    greedy = generate_prompts(model, tok, QUERIES[:2], n=1, temperature=0.0, max_new_tokens=6)
    assert greedy == generate_prompts(model, tok, QUERIES[:2], n=1, temperature=0.0, max_new_tokens=6)
    # same inputs -> the saved model is reused, not retrained
    again = train_and_save(build_sft_trainer, tiny_dir, rows, rows[:2], knobs, lora, tmp_path / "m", seed=0)
    assert again["reused"] and again["log_history"] == info["log_history"]
    assert train_info(tmp_path / "m", "another-fingerprint") is None


def test_lora_merge_keeps_the_trained_function(tiny_dir, tmp_path):
    lora = {"r": 4, "lora_alpha": 8, "target_modules": "all-linear"}
    trainer, tok = trained_lora_sft(tiny_dir, tmp_path / "t", lora)
    ids = torch.tensor([tok("a dog runs on the beach")["input_ids"]])
    peft_logits = trainer.model.eval()(ids).logits
    base_logits = load_causal_lm(str(tiny_dir))[0].eval()(ids).logits
    save_optimizer(
        trainer.model, tok, tmp_path / "adapter"
    )  # no train_info: the base comes from PEFT's config
    merged_logits = load_optimizer(tmp_path / "adapter")[0](ids).logits
    assert not torch.allclose(peft_logits, base_logits, atol=1e-4)  # training changed something
    assert torch.allclose(peft_logits, merged_logits, atol=1e-4)


def test_generate_rejects_sampling_knobs_that_make_no_sense(tiny_dir):
    model, tok = load_causal_lm(str(tiny_dir))
    with pytest.raises(ValueError, match="greedy"):
        generate_prompts(model, tok, ["a cat"], n=3, temperature=0.0)


def test_generate_heldout_resumes(tiny_dir, tmp_path):
    model, tok = load_causal_lm(str(tiny_dir))
    recs = [{"id": f"h{i}", "query": q, "source": "dpo"} for i, q in enumerate(QUERIES[:3])]
    out_path = tmp_path / "p.jsonl"
    write_jsonl(out_path, [{"id": "h1", "query": QUERIES[1], "prompt": "DONE BEFORE", "method": "sft"}])
    rows = generate_heldout(model, tok, recs, out_path, "sft", max_new_tokens=4, batch_size=2)
    assert [r["id"] for r in rows] == ["h0", "h1", "h2"] and rows[1]["prompt"] == "DONE BEFORE"
    assert all(r["method"] == "sft" for r in (rows[0], rows[2]))
    assert len(out_path.read_text().splitlines()) == 3  # only the two missing ones were appended


def test_generate_heldout_batches_one_source_at_a_time(tmp_path):
    class Recorder:  # a text backend that records each batch's queries
        batches = []

        def generate(self, convs, params):
            self.batches.append([re.search(r"\bq\d\b", c[-1]["content"]).group() for c in convs])
            return [["p"] for _ in convs]

    recs = [{"id": f"h{i}", "query": f"q{i}", "source": "sft" if i % 2 else "shapes"} for i in range(6)]
    rows = generate_heldout(
        Recorder(), None, recs, tmp_path / "p.jsonl", "sft", max_new_tokens=4, batch_size=3
    )
    assert Recorder.batches == [["q1", "q3", "q5"], ["q0", "q2", "q4"]]  # "sft" sorts before "shapes"
    assert [r["id"] for r in rows] == [r["id"] for r in recs]  # returned in the records' order


def test_full_profile_knobs_run_on_an_architecture_identical_tiny_llama3(tmp_path):
    """The full profile's SFT path (full fine-tune, its scheduler, warmup, epochs, activation checkpointing)
    on a Llama-3-8B-shaped config shrunk in width and depth; only the device knobs are swapped for CPU."""
    sft = read_profile("full")["sft"]  # this stage's section, with the cpu profile merged under it
    assert sft["base_model"] == "meta-llama/Meta-Llama-3-8B-Instruct" and not sft["use_lora"]
    assert sft["trainer"]["learning_rate"] == 2e-6 and sft["trainer"]["num_train_epochs"] == 5
    _, tok = load_causal_lm("tiny-llama")
    llama3 = llama_config(  # Llama-3-8B: 32 heads / 8 KV heads, rope theta 5e5, untied, SiLU MLP 3.5x
        tok,
        hidden_size=64,
        intermediate_size=224,
        num_hidden_layers=2,
        num_attention_heads=8,
        num_key_value_heads=2,
        rope_theta=500000.0,
        tie_word_embeddings=False,
        max_position_embeddings=8192,
        rms_norm_eps=1e-5,
    )
    LlamaForCausalLM(llama3).save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    knobs = on_cpu(sft["trainer"], num_train_epochs=1, learning_rate=1e-3)
    rows, _ = sft_examples([sft_record(q) for q in QUERIES[:4]])
    info = train_and_save(
        build_sft_trainer, tmp_path / "base", rows, [], knobs, None, tmp_path / "sft", seed=0
    )
    assert info["steps"] == 2  # 4 examples / batch 2, one epoch
    model, _ = load_optimizer(tmp_path / "sft")
    assert model.config.rope_parameters["rope_theta"] == 500000.0


def test_judge_table_reports_each_principle_per_prompt():
    recs = [{"id": i, "query": "a red car", "content": "a red car", "source": "dpo"} for i in range(2)]
    good = "A shiny red car drives along a coastal road at sunset, the camera tracking it smoothly from the side."
    table = judge_table(
        RuleJudge(), recs, [{"prompt": "", "method": "sft"}, {"prompt": good, "method": "sft"}]
    )
    assert list(table["all"]) == [False, True]
    assert not table.loc[0, "helpful"] and "helpful:empty" in table.loc[0, "reasons"]
    assert table.loc[1, ["harmless", "aligned", "helpful"]].all() and table.loc[1, "reasons"] == []
