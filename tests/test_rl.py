"""Online RL (vpolib/rl.py): the video reward worked out by hand on one query, its noise apart from evaluation's,
and a GRPO run of two steps on the tiny Llama, reused when nothing changed."""

import json

import pytest
import torch
from tiny_records import CPU
from trl import GRPOTrainer

from vpolib.config import load_config
from vpolib.examples import RL_COLUMNS
from vpolib.models import load_causal_lm
from vpolib.noise import video_seed
from vpolib.rl import VideoReward, completion_text, rl_rows, train_grpo
from vpolib.shapesworld import make_queries
from vpolib.shared_prompt import SharedPromptGRPOTrainer
from vpolib.trainers import build_grpo_trainer
from vpolib.video import make_video_backend


@pytest.fixture(scope="module")
def backend():
    return make_video_backend(load_config("smoke"))


@pytest.fixture(scope="module")
def query():
    return make_queries(1, seed=3)[0]


def test_reward_is_the_mean_score_over_seeds_of_each_completion(backend, query):
    reward = VideoReward(backend, seed=42, seeds=2, batch=3)
    completions = [
        [{"role": "assistant", "content": query["caption"]}],
        [{"role": "assistant", "content": ""}],
    ]
    state = type("State", (), {"global_step": 5})()
    got = reward(None, completions, trainer_state=state, query=[query["query"]] * 2, id=[query["id"]] * 2)
    # by hand: the caption rendered with the two training seeds of completion 0 at step 5
    questions = backend.checklist(query["query"])
    clips = backend.render(
        [query["caption"]] * 2, [video_seed(42, f"{query['id']}#grpo5.0.{s}") for s in (0, 1)]
    )
    by_hand = [backend.score(questions, c) for c in clips]
    assert got[0] == pytest.approx(sum(r["score"] / r["max_score"] for r in by_hand) / 2)
    assert 0 <= got[1] <= 1 and got[0] > got[1]  # the caption's video passes more of the checklist than ""'s
    assert reward.videos == 4  # 2 completions x 2 seeds, rendered in batches of 3
    again = reward(None, completions, trainer_state=state, query=[query["query"]] * 2, id=[query["id"]] * 2)
    assert again == got  # the same step and place in the batch: the same noise


def test_training_noise_never_meets_an_evaluation_seed(query):
    reward = VideoReward(None, seed=42, seeds=3)
    train = {reward.noise(query["id"], step, i, s) for step in range(4) for i in range(12) for s in range(3)}
    evaluation = {video_seed(42, query["id"])} | {video_seed(42, f"{query['id']}#eval{s}") for s in range(3)}
    evaluation |= {video_seed(42, f"{query['id']}#dev{s}") for s in range(3)}
    assert len(train) == 4 * 12 * 3 and not train & evaluation


def test_rows_carry_the_reward_columns_and_bad_seeds_fail(query):
    (row,) = rl_rows([query], "short")
    assert (
        tuple(row) == RL_COLUMNS
        and row["prompt"][-1]["role"] == "user"
        and query["query"] in str(row["prompt"])
    )
    assert completion_text("  plain  ") == "plain"
    with pytest.raises(ValueError, match="at least one noise seed"):
        VideoReward(None, seed=0, seeds=0)


def test_grpo_trains_two_steps_counts_its_renders_and_is_reused(backend, tiny_dir, tmp_path):
    cfg = load_config("smoke")
    queries = make_queries(4, seed=3)
    cfg.grpo.trainer = {**cfg.grpo.trainer, **CPU, "per_device_train_batch_size": 4}
    reward = VideoReward(backend, seed=cfg.seed, seeds=1)
    info = train_grpo(cfg.grpo, tiny_dir, queries, reward, "short", tmp_path / "grpo", cfg.seed)
    assert info["steps"] == 2 and not info["reused"]
    # each step samples 4 completions (2 queries x num_generations 2), each rendered with one seed
    assert (
        info["videos"] == 2 * 4 == reward.videos and 0 < info["tokens"] <= 2 * 4 * 24
    )  # <= max_completion_length
    logged = [row for row in info["log_history"] if "reward" in row]
    assert len(logged) == 2 and all(0 <= row["reward"] <= 1 for row in logged)
    assert json.loads((tmp_path / "grpo" / "train_info.json").read_text())["steps"] == 2
    again = train_grpo(cfg.grpo, tiny_dir, queries, reward, "short", tmp_path / "grpo", cfg.seed)
    assert again["reused"] and (again["videos"], again["tokens"]) == (info["videos"], info["tokens"])
    assert reward.videos == 8  # nothing rendered the second time: the budget was read back


def no_reward(completions, **kwargs):
    return [0.0] * len(completions)


@pytest.mark.parametrize(
    "lora", [None, {"r": 8, "lora_alpha": 16, "target_modules": "all-linear"}], ids=["full", "lora"]
)
def test_shared_prompt_grpo_equals_trls_rows(tiny_dir, lora):
    """On a CPU each prompt runs once for its completions (SharedPromptGRPOTrainer): in fp32 the same per-token
    log-probs, entropies and gradient as TRL's one row per completion, on a batch laid out as GRPO lays it out (two
    prompts of different lengths, left-padded, 3 completions each, right-padded and ended at different lengths),
    at a sampling temperature other than 1."""
    model, tok = load_causal_lm(str(tiny_dir))
    rows = rl_rows(make_queries(2, seed=5), "short")
    knobs = {**CPU, "num_generations": 3, "per_device_train_batch_size": 6, "max_completion_length": 8,
             "temperature": 0.7, "max_steps": 1}  # fmt: skip
    trainer = build_grpo_trainer(
        model, tok, rows, [], knobs, "/tmp/unused-grpo", 0, lora, reward_funcs=[no_reward]
    )
    assert type(trainer) is SharedPromptGRPOTrainer
    prompts = [
        tok.apply_chat_template(r["prompt"], add_generation_prompt=True, return_dict=False) for r in rows
    ]
    width = max(len(p) for p in prompts)
    assert len({len(p) for p in prompts}) == 2  # the shorter prompt is left-padded
    prompt_ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts for _ in range(3)])
    prompt_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts for _ in range(3)])
    torch.manual_seed(0)
    completion_ids = torch.randint(100, 1000, (6, 8))  # [6, 8]
    completion_mask = (torch.arange(8) < torch.tensor([[8], [5], [3], [8], [1], [6]])).long()  # ended rows
    input_ids = torch.cat([prompt_ids, completion_ids], 1)  # [6, T]
    attention_mask = torch.cat([prompt_mask, completion_mask], 1)
    trainer.model.train()
    results = []
    for method in (SharedPromptGRPOTrainer, GRPOTrainer):
        trainer.model.zero_grad()
        logps, entropies, _ = method._get_per_token_logps_and_entropies(
            trainer, trainer.model, input_ids, attention_mask, 8, compute_entropy=True
        )  # [6, 8] each
        (logps * completion_mask).sum().backward()
        grads = [p.grad.clone() for p in trainer.model.parameters() if p.grad is not None]
        results.append((logps * completion_mask, entropies * completion_mask, grads))
    (lp, ent, g), (lp_trl, ent_trl, g_trl) = results
    assert torch.allclose(lp, lp_trl, atol=1e-4, rtol=1e-5) and lp.abs().sum() > 0
    assert torch.allclose(ent, ent_trl, atol=1e-4, rtol=1e-5)
    assert len(g) == len(g_trl) > 0
    # fp32 sums taken in another order differ by up to ~3e-6 on gradients up to ~10 (AVX-512 and AVX2 kernels alike)
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(g, g_trl, strict=True))


@pytest.mark.parametrize("top_k, temperature", [(1, 1.0), (0, 1e-3)], ids=["top1", "full-vocab-cold"])
def test_grpo_samples_through_the_decoding_loop_argmax_equal_to_trls(tiny_dir, top_k, temperature):
    """On a CPU, GRPO samples through vpolib's decoding loop: where sampling is an argmax (top-k 1, or no top-k cut
    at a temperature near 0), every completion equals TRL's ``generate`` path token for token, EOS included."""
    model, tok = load_causal_lm(str(tiny_dir))
    rows = rl_rows(make_queries(2, seed=5), "short")
    knobs = {**CPU, "num_generations": 3, "per_device_train_batch_size": 6, "max_completion_length": 12,
             "top_k": top_k, "temperature": temperature, "max_steps": 1}  # fmt: skip
    trainer = build_grpo_trainer(
        model, tok, rows, [], knobs, "/tmp/unused-grpo", 0, None, reward_funcs=[no_reward]
    )
    prompt_ids = [
        tok.apply_chat_template(r["prompt"], add_generation_prompt=True, return_dict=False)
        for r in rows
        for _ in range(3)
    ]  # a prompt's copies side by side, as TRL's sampler lays them
    assert trainer._fast_sampling()
    ours, _ = trainer._generate_single_turn(prompt_ids, None, {}, 3)
    theirs, _ = GRPOTrainer._generate_single_turn(trainer, prompt_ids, None, {}, 3)
    assert ours == theirs and len(ours) == 6 and all(0 < len(c) <= 12 for c in ours)
    trainer.repetition_penalty = 1.1  # a logits processor the loop lacks: TRL's path samples
    assert not trainer._fast_sampling()
