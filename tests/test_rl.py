"""Online RL (vpolib/rl.py): the video reward worked out by hand on one query, its noise apart from evaluation's,
and a GRPO run of two steps on the tiny Llama, reused when nothing changed."""

import json

import pytest
from tiny_records import CPU

from vpolib.config import load_config
from vpolib.examples import RL_COLUMNS
from vpolib.noise import video_seed
from vpolib.rl import VideoReward, completion_text, rl_rows, train_grpo
from vpolib.shapesworld import make_queries
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
