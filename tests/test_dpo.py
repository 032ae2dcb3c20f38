"""DPO: pair filtering, failure-sign detection, a few steps (full and LoRA) from ln 2 raising the margin,
and the full profile's knobs (full DPO, reference reloaded from the SFT dir) on a tiny Llama."""

import math
from types import SimpleNamespace

import pytest
import torch
from tiny_records import CPU as TINY_CPU
from tiny_records import QUERIES
from tiny_training import on_cpu

import vpolib.trainers as trainers
import vpolib.training_log as training_log
from vpolib.checkpoints import load_optimizer
from vpolib.examples import (
    PAIR_SETS,
    capped_split,
    dpo_variants,
    no_pairs,
    pair_examples,
    require_examples,
    split,
    unsafe_rejected,
    variant_files,
    variant_split,
)
from vpolib.io import write_jsonl
from vpolib.models import load_causal_lm
from vpolib.profiles import read_profile
from vpolib.shared_prompt import SharedPromptDPOTrainer, shared_prompt_rows
from vpolib.trainers import build_dpo_trainer, train_and_save
from vpolib.training_log import (
    completion_logprob,
    completion_tokens,
    curve_ends,
    dpo_failure_signs,
    dpo_loss_by_hand,
    first_last,
    log_frame,
    seconds_per_step,
    variant_metrics,
)

CPU = {**TINY_CPU, "beta": 0.1}


def turn(role, text):
    return [{"role": role, "content": text}]


def pair(q, source="text", chosen=None, rejected="blurry bad"):
    return {
        "id": q,
        "query": q,
        "prompt": turn("user", q),
        "chosen": turn("assistant", chosen or f"A shot of {q}."),
        "rejected": turn("assistant", rejected),
        "source": source,
        "scores": {"chosen": 0.9},
    }


def test_pair_examples_filters_sources_and_skips_degenerate_pairs():
    pairs = [
        pair("a", "text"),
        pair("b", "video"),
        pair("c", "video", chosen="same", rejected="same"),
        {**pair("d", "video"), "rejected": []},
        {**pair("e", "text"), "chosen": None},
        {**pair("f", "video"), "chosen": [{"role": "assistant"}]},
    ]
    rows, skipped = pair_examples(pairs, PAIR_SETS["video"])
    assert skipped == 3 and len(rows) == 1
    assert rows[0] == {
        "prompt": turn("user", "b"),
        "chosen": turn("assistant", "A shot of b."),
        "rejected": turn("assistant", "blurry bad"),
    }  # provenance columns dropped
    assert [len(pair_examples(pairs, PAIR_SETS[k])[0]) for k in ("text", "both")] == [1, 2]
    assert len(pair_examples(pairs)[0]) == 2


def entry(step, loss, chosen, rejected):
    return {
        "step": step,
        "loss": loss,
        "rewards/chosen": chosen,
        "rewards/rejected": rejected,
        "rewards/margins": chosen - rejected,
    }


def test_failure_signs():
    healthy = [entry(1, 0.69, 0.0, 0.0), entry(2, 0.6, 0.1, -0.2), entry(3, 0.5, 0.2, -0.4)]
    assert dpo_failure_signs(healthy) == []
    falling = [entry(1, 0.69, 0.0, 0.0), entry(2, 0.5, -0.3, -0.9)]
    assert [s["sign"] for s in dpo_failure_signs(falling)] == ["chosen_and_rejected_falling"]
    diverged = [entry(1, 0.69, 0.0, 0.0), entry(2, float("nan"), 0.0, 0.0)]
    assert {s["sign"] for s in dpo_failure_signs(diverged)} >= {"nan_loss", "margin_not_increasing"}
    flat = [entry(1, 0.69, 0.1, 0.1), entry(2, 0.69, 0.1, 0.1), {"train_runtime": 3.0, "step": 2}]
    assert [s["sign"] for s in dpo_failure_signs(flat)] == ["margin_not_increasing"]


def test_log_frame_splits_train_and_eval():
    log = [
        entry(1, 0.7, 0.0, 0.0),
        {"step": 1, "eval_loss": 0.68, "eval_rewards/margins": 0.1},
        entry(2, 0.6, 0.2, 0.0),
        {"step": 2, "train_runtime": 1.0},
    ]
    frame = log_frame(log)
    assert list(frame["split"]) == ["train", "eval", "train"]
    assert first_last(frame, "loss") == [0.7, 0.6] and first_last(frame, "loss", "eval") == [0.68, 0.68]
    assert first_last(frame, "rewards/accuracies") is None


@pytest.mark.parametrize(
    "lora", [None, {"r": 8, "lora_alpha": 16, "target_modules": "all-linear"}], ids=["full", "lora"]
)
def test_dpo_starts_at_ln2_and_raises_the_margin_on_a_toy_set(tiny_dir, tmp_path, lora):
    """What DPO guarantees here, bounded from the setup (no threshold tuned on one machine).

    Step 1: the policy is the reference (full: TRL reloads the reference from the same dir; LoRA: the adapters
    start with B = 0 and add exactly nothing), so every implicit reward beta * (log pi - log pi_ref) is 0 and the
    first loss is -log sigmoid(0) = ln 2. In floating point the policy's and the reference's summed log-prob L of
    an answer (n completion tokens) can differ only by rounding: at most eps per token plus the sum's own, so
    2 n eps |L| (eps: the dtype's machine epsilon). A margin holds two such differences times beta, -log sigmoid
    moves by at most |margin|, and the loss is itself rounded once: |loss_1 - ln 2| <= 4 beta n eps max|L| + eps.
    Every L is negative, so max|L| <= batch size x |batch mean|, the means TRL logs as ``logps/*``.
    After step 1 each step follows the gradient that raises the margin: the last steps' mean margin is above
    the first.
    """
    rows, _ = pair_examples([pair(q) for q in QUERIES])
    knobs = {
        **CPU,
        "max_steps": 8,
        "learning_rate": 3e-3 if lora else 1e-3,
        "eval_strategy": "steps",
        "eval_steps": 8,
    }
    info = train_and_save(build_dpo_trainer, tiny_dir, rows, rows[:3], knobs, lora, tmp_path / "vpo", seed=0)
    train = [e for e in info["log_history"] if "rewards/margins" in e and "loss" in e]
    assert len(train) == 8 and all(math.isfinite(e["loss"]) for e in train)
    assert "nan_loss" not in {s["sign"] for s in dpo_failure_signs(info["log_history"])}
    assert any("eval_rewards/margins" in e for e in info["log_history"])  # the eval pairs were scored
    model, tok = load_optimizer(tmp_path / "vpo")
    assert type(model).__name__ == "LlamaForCausalLM"

    eps = torch.finfo(model.dtype).eps
    n = max(completion_tokens(tok, r["prompt"], r[side]) for r in rows for side in ("chosen", "rejected"))
    first = train[0]
    max_logp = knobs["per_device_train_batch_size"] * max(
        abs(first["logps/chosen"]), abs(first["logps/rejected"])
    )
    assert first["loss"] == pytest.approx(math.log(2), abs=4 * knobs["beta"] * n * eps * max_logp + eps)
    margins = [e["rewards/margins"] for e in train]
    assert sum(margins[-3:]) / 3 > margins[0]


def test_shared_prompt_rows_by_hand():
    """Two pairs as TRL's DPOTrainer batches them (rows chosen_0, chosen_1, rejected_0, rejected_1; right-padded with 0):
    pair 0 = prompt [5 6 7], chosen [8 9], rejected [10]; pair 1 = prompt [5 6], chosen [11], rejected [12 13 14]."""
    ids = torch.tensor([[5, 6, 7, 8, 9], [5, 6, 11, 0, 0], [5, 6, 7, 10, 0], [5, 6, 12, 13, 14]])
    att = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    ans = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 1, 1, 1]])
    out = shared_prompt_rows(ids, att, ans)
    # one row a pair: prompt, chosen, rejected; the rejected answer keeps the positions of its own row
    assert out["input_ids"].tolist() == [[5, 6, 7, 8, 9, 10], [5, 6, 11, 12, 13, 14]]
    assert out["position_ids"].tolist() == [[0, 1, 2, 3, 4, 3], [0, 1, 2, 2, 3, 4]]
    mask = out["attention_mask"][:, 0].int()  # [B, S, S]
    assert mask[0, 5].tolist() == [
        1,
        1,
        1,
        0,
        0,
        1,
    ]  # rejected "10" sees the prompt and itself, not the chosen
    assert mask[0, 4].tolist() == [1, 1, 1, 1, 1, 0]  # chosen "9": plain causal
    assert mask[1, 4].tolist() == [1, 1, 0, 1, 1, 0]  # rejected "13": prompt [5 6], then "12" and itself
    # each answer token: the state that predicts it (the first rejected token: the prompt's last) ...
    assert out["labels"].tolist() == [8, 9, 10, 11, 12, 13, 14]
    assert list(zip(*(t.tolist() for t in out["src"]), strict=True)) == [
        (0, 2), (0, 3), (0, 2), (1, 1), (1, 1), (1, 3), (1, 4)
    ]  # fmt: skip
    # ... and its place in TRL's next-token layout (row, position - 1)
    assert list(zip(*(t.tolist() for t in out["dst"]), strict=True)) == [
        (0, 2), (0, 3), (2, 2), (1, 1), (3, 1), (3, 2), (3, 3)
    ]  # fmt: skip
    # a row whose answer comes before a prompt token cannot be packed
    with pytest.raises(ValueError, match="row 1 "):
        shared_prompt_rows(ids, att, ans.index_put((torch.tensor([1]), torch.tensor([0])), torch.tensor(1)))
    # two pairs with one prompt (a query's text and video pair): one packed row, the prompt once, four answers
    two = shared_prompt_rows(ids[[0, 0, 2, 2]], att[[0, 0, 2, 2]], ans[[0, 0, 2, 2]])
    assert two["input_ids"].tolist() == [[5, 6, 7, 8, 9, 8, 9, 10, 10]]
    assert two["position_ids"].tolist() == [[0, 1, 2, 3, 4, 3, 4, 3, 3]]


@pytest.mark.parametrize(
    "lora", [None, {"r": 8, "lora_alpha": 16, "target_modules": "all-linear"}], ids=["full", "lora"]
)
def test_shared_prompt_dpo_equals_trls_two_rows(tiny_dir, lora):
    """On a CPU each pair's prompt runs once (SharedPromptDPOTrainer): in fp32 the same reference log-probs, loss
    (DPO + NLL), gradient and logged metrics as TRL's two rows per pair, on answers of different lengths."""
    model, tok = load_causal_lm(str(tiny_dir))
    rows, _ = pair_examples([pair(q, rejected="blurry bad " * (i + 1)) for i, q in enumerate(QUERIES[:3])])
    knobs = {**CPU, "max_steps": 1, "precompute_ref_log_probs": True, "loss_type": ["sigmoid", "sft"],
             "loss_weights": [1.0, 1.0]}  # fmt: skip
    trainer = build_dpo_trainer(model, tok, rows, [], knobs, "/tmp/unused-dpo", 0, lora)
    assert type(trainer) is SharedPromptDPOTrainer and trainer._shared_prompt()
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    ref = [f(trainer, trainer.model, batch) for f in (SharedPromptDPOTrainer.compute_ref_log_probs,
                                                      trainers.DPOTrainer.compute_ref_log_probs)]  # fmt: skip
    for ours, trl in zip(*ref, strict=True):
        assert torch.allclose(ours, trl, atol=1e-4, rtol=1e-5)
    trainer.model.train()
    with torch.no_grad():  # move off the reference so that the margins are not 0
        for p in trainer.model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    results = []
    for compute in (SharedPromptDPOTrainer._compute_loss, trainers.DPOTrainer._compute_loss):
        trainer._metrics["train"].clear()
        trainer.model.zero_grad()
        loss = compute(trainer, trainer.model, dict(batch), False)
        loss.backward()
        grads = [p.grad.clone() for p in trainer.model.parameters() if p.grad is not None]
        results.append((loss.item(), grads, {k: v[0] for k, v in trainer._metrics["train"].items()}))
    (ours, g_ours, m_ours), (trl, g_trl, m_trl) = results
    assert ours == pytest.approx(trl, rel=1e-5) and len(g_ours) == len(g_trl) > 0
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(g_ours, g_trl, strict=True))
    assert m_ours["rewards/margins"] != 0
    for key in (
        "rewards/margins",
        "logps/chosen",
        "logps/rejected",
        "entropy",
        "logits/chosen",
        "mean_token_accuracy",
    ):
        assert m_ours[key] == pytest.approx(m_trl[key], rel=1e-4, abs=1e-5), key


def test_full_profile_dpo_knobs_on_a_tiny_llama(tiny_dir, tmp_path):
    """Full (non-LoRA) DPO with the full profile's scheduler/epochs/beta: the reference model is reloaded
    from the SFT dir (TRL does that from the model's path); only device knobs are swapped for CPU."""
    dpo = read_profile("full")["dpo"]
    assert dpo["trainer"]["beta"] == 0.1 and dpo["trainer"]["learning_rate"] == 5e-7 and not dpo["use_lora"]
    knobs = on_cpu(dpo["trainer"], eval_strategy="no")
    rows, _ = pair_examples([pair(q) for q in QUERIES[:4]])
    info = train_and_save(build_dpo_trainer, tiny_dir, rows, [], knobs, None, tmp_path / "vpo", seed=0)
    assert info["steps"] == 2  # 4 pairs / batch 2, one epoch
    assert (tmp_path / "vpo" / "config.json").exists()


def test_dpo_loss_by_hand():
    same = {"chosen": -12.0, "rejected": -9.0}
    assert dpo_loss_by_hand(same, same, 0.1)["loss"] == pytest.approx(math.log(2))  # policy = reference
    out = dpo_loss_by_hand({"chosen": -10.0, "rejected": -11.0}, same, 0.1)
    # rewards 0.1 * (2) = 0.2 and 0.1 * (-2) = -0.2: margin 0.4, loss = log(1 + e^-0.4)
    assert out["reward_chosen"] == pytest.approx(0.2) and out["reward_rejected"] == pytest.approx(-0.2)
    assert out["loss"] == pytest.approx(math.log1p(math.exp(-0.4)))


def test_completion_logprob_sums_the_completion_tokens(tiny_dir):
    model, tok = load_causal_lm(str(tiny_dir))
    prompt, completion = (
        [{"role": "user", "content": "a cat"}],
        [{"role": "assistant", "content": "A cat sleeps."}],
    )
    p_ids = tok.apply_chat_template(prompt, add_generation_prompt=True, return_dict=False)
    f_ids = tok.apply_chat_template(prompt + completion, return_dict=False)
    with torch.inference_mode():
        logp = torch.log_softmax(model(input_ids=torch.tensor([f_ids])).logits[0], -1)
    by_hand = sum(float(logp[t - 1, f_ids[t]]) for t in range(len(p_ids), len(f_ids)))
    assert completion_logprob(model, tok, prompt, completion) == pytest.approx(by_hand, rel=1e-5)


def test_dpo_variants_files_and_missing_pairs():
    assert dpo_variants(SimpleNamespace(pairs="both", ablations=["text", "both", "video"])) == [
        "both",
        "text",
        "video",
    ]
    with pytest.raises(ValueError, match="unknown pair set"):
        dpo_variants(SimpleNamespace(pairs="both", ablations=["txt"]))
    assert variant_files("both", "both") == ("model", "heldout_prompts.jsonl")
    assert variant_files("video", "both") == ("model_video", "heldout_prompts_video.jsonl")
    assert no_pairs("video", "both", {"text": 3}) == "no usable pairs from sources ['video']"
    with pytest.raises(ValueError, match="no usable 'both' pairs"):
        no_pairs("both", "both", {"text": 0})


def test_variant_split_reads_the_pair_set_file(tmp_path):
    stage04 = tmp_path / "04_feedback"
    rows = [pair(q, "video") for q in QUERIES] + [pair("a text one", "text")]
    write_jsonl(stage04 / "video_pairs.jsonl", rows)

    dpo = SimpleNamespace(eval_fraction=0.5, max_pairs=2, max_eval=None, unsafe_repeat=1)
    train, evaluation, skipped = variant_split(stage04, "video", dpo, seed=0)
    kept = [
        {k: p[k] for k in ("prompt", "chosen", "rejected")} for p in rows[:6]
    ]  # the text pair is left out
    full_train, full_eval = split(kept, 0.5, 0)
    assert (train, evaluation, skipped) == (full_train[:2], full_eval, 0) and len(full_eval) == 3
    assert variant_split(stage04, "text", dpo, seed=0) == ([], [], 0)  # 04 wrote no text_pairs.jsonl


def test_unsafe_text_pairs_are_repeated_in_training_only(tmp_path):
    stage04 = tmp_path / "04_feedback"
    unsafe = {**pair("kill a cat"), "why": "harmless:lexicon; helpful:too_short"}
    rows = [unsafe, {**pair("a dog"), "why": "aligned:imprecise"}, pair("a red ball", "video"), pair("a hat")]
    write_jsonl(stage04 / "pairs.jsonl", rows)
    once = SimpleNamespace(eval_fraction=0.0, max_pairs=None, max_eval=None, unsafe_repeat=1)
    thrice = SimpleNamespace(**{**vars(once), "unsafe_repeat": 3})
    plain = variant_split(stage04, "both", once, seed=0)[0]
    unsafe_row = {k: unsafe[k] for k in ("prompt", "chosen", "rejected")}
    assert len(plain) == 4
    assert variant_split(stage04, "both", thrice, seed=0)[0] == plain + [unsafe_row, unsafe_row]
    # with an eval split, the unsafe pair is either evaluated once or trained three times, never both
    half = SimpleNamespace(**{**vars(thrice), "eval_fraction": 0.5})
    for seed in range(4):
        train, evaluation, _ = variant_split(stage04, "both", half, seed=seed)
        assert (train.count(unsafe_row), evaluation.count(unsafe_row)) in {(3, 0), (0, 1)}
    # the paper's recipe weights every pair once
    write_jsonl(stage04 / "paper_pairs.jsonl", rows)
    assert variant_split(stage04, "paper", thrice, seed=0)[0] == plain
    # a video pair's reasons never count, whatever they say
    assert not unsafe_rejected({**unsafe, "source": "video"}) and unsafe_rejected(unsafe)


def test_capped_split_and_require_examples():
    rows = list(range(10))
    train, evaluation = split(rows, 0.2, 1)
    assert capped_split(rows, 0.2, 1, max_train=3, max_eval=1) == (train[:3], evaluation[:1])
    assert capped_split(rows, 0.2, 1) == (train, evaluation)
    require_examples([1], "x")
    with pytest.raises(ValueError, match="no usable training examples in sft.jsonl"):
        require_examples([], "sft.jsonl")


def test_train_stage_removes_stale_prompts_only_when_it_retrains(tmp_path, monkeypatch):
    calls, reuse = [], []

    def fake(build, base, train, evaluation, trainer, lora, out_dir, seed, **launch):
        calls.append((trainer, lora, launch))
        return {"reused": reuse[-1]}

    monkeypatch.setattr(trainers, "train_and_save", fake)
    stage_cfg = SimpleNamespace(
        trainer={"beta": 0.1}, lora={"r": 4}, use_lora=False, launcher="inprocess", accelerate_config=None,
        num_processes=None,
    )  # fmt: skip
    stale = tmp_path / "heldout_prompts.jsonl"
    for reused, exists in [(True, True), (False, False)]:
        reuse.append(reused)
        stale.write_text("{}\n")
        trainers.train_stage(None, "base", [], [], stage_cfg, tmp_path / "model", 0, stale=[stale])
        assert stale.exists() == exists
    launch = {"key_extra": None, "launcher": "inprocess", "accelerate_config": None, "num_processes": None}
    assert calls[0] == ({"beta": 0.1}, None, launch)  # use_lora false: no LoRA section passed


def test_training_log_summaries():
    log = log_frame(
        [
            {"step": 1, "loss": 0.7, "rewards/margins": 0.0},
            {"step": 2, "loss": 0.5, "rewards/margins": 0.2},
            {"step": 2, "eval_loss": 0.6},
        ]
    )
    assert curve_ends(log, ["loss", "rewards/margins", "rewards/chosen"]) == {
        "loss": [0.7, 0.5],
        "rewards/margins": [0.0, 0.2],
        "rewards/chosen": None,
    }
    info = {"steps": 3, "train_s": 10.0}
    assert seconds_per_step(info) == 3.33 and seconds_per_step({"steps": 0, "train_s": 1.0}) == 1.0
    run = {"train": 5, "eval": 1, "skipped_pairs": 2, "info": info}
    assert variant_metrics(run, log, ["loss"], [{"sign": "margin_not_increasing", "detail": ""}]) == {
        "train_pairs": 5,
        "eval_pairs": 1,
        "skipped_pairs": 2,
        "steps": 3,
        "train_s": 10.0,
        "s_per_step": 3.33,
        "loss": [0.7, 0.5],
        "failure_signs": ["margin_not_increasing"],
    }


def test_pair_logprobs_scores_both_answers(monkeypatch):
    monkeypatch.setattr(
        training_log, "completion_logprob", lambda m, t, prompt, answer: -len(answer[0]["content"])
    )
    assert training_log.pair_logprobs(None, None, pair("a cat")) == {
        "chosen": -len("A shot of a cat."),
        "rejected": -10,
    }
