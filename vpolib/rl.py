"""Online RL of the prompt optimizer: TRL's ``GRPOTrainer`` rewarded by the video each sampled prompt makes.

One of the paradigms notebook 08 compares at equal budget. Each completion the policy samples is rendered by
the run's video model and scored against its query's checklist, the mean over ``grpo.reward_seeds`` noise seeds:
the reward stage 04 gives a sample, now given online. The noise of a training render is keyed by the query, the
trainer's step and the completion's place in the batch, never by an evaluation seed (``#eval``/``#dev`` keys), so
the held-out reward is measured on noise the policy never trained against. :class:`VideoReward` counts what it
rendered: the budget unit the paradigms share with stage 04's sampling.
"""

from __future__ import annotations

import functools
from pathlib import Path

from vpolib import trainers
from vpolib.io import read_json, write_json
from vpolib.noise import video_seed
from vpolib.scoring import score_texts
from vpolib.templates import optimize_messages


def rl_rows(queries: list[dict], instruction: str) -> list[dict]:
    """GRPO's dataset: one row per query, the optimizer's user turn as ``prompt`` and the query and its id as
    the columns the reward reads."""
    return [
        {
            "prompt": optimize_messages(q["query"], instruction, q.get("source")),
            "query": q["query"],
            "id": q["id"],
        }
        for q in queries
    ]


def completion_text(completion) -> str:
    """A TRL completion (conversational ``[{"role": "assistant", "content": ...}]`` or plain text) -> its text."""
    return (completion[-1]["content"] if isinstance(completion, list) else completion).strip()


class VideoReward:
    """A TRL reward function: each completion rendered with ``seeds`` noise seeds and scored against its query's
    checklist; the reward is the mean score / max score (0..1). ``videos`` counts every render, ``tokens`` every
    completion token it was given (the policy's generation cost)."""

    __name__ = "video_reward"  # TRL logs each reward function under its __name__

    def __init__(self, backend, seed: int, seeds: int = 2, batch: int = 32):
        if seeds < 1:
            raise ValueError(f"a reward needs at least one noise seed, got {seeds}")
        self.backend, self.seed, self.seeds, self.batch = backend, seed, seeds, batch
        self.videos = self.tokens = 0

    def noise(self, query_id: str, step: int, index: int, s: int) -> int:
        """The noise seed of one training render (``#grpo`` keys: disjoint from evaluation's)."""
        return video_seed(self.seed, f"{query_id}#grpo{step}.{index}.{s}")

    def __call__(
        self, prompts, completions, completion_ids=None, trainer_state=None, **columns
    ) -> list[float]:
        self.tokens += sum(len(ids) for ids in completion_ids or [])
        texts = [completion_text(c) for c in completions]
        step = trainer_state.global_step if trainer_state is not None else 0
        jobs = [(i, s) for i in range(len(texts)) for s in range(self.seeds)]
        scores: list[list[float]] = [[] for _ in texts]
        rendered, asked = [texts[i] for i, _ in jobs], [columns["query"][i] for i, _ in jobs]
        noises = [self.noise(columns["id"][i], step, i, s) for i, s in jobs]
        for k, res in score_texts(self.backend, rendered, asked, noises, self.batch):
            scores[jobs[k][0]].append(res["score"] / res["max_score"])
        self.videos += len(jobs)
        return [sum(v) / len(v) for v in scores]


def train_grpo(grpo_cfg, base: str | Path, queries: list[dict], reward: VideoReward, instruction: str,
               out_dir: str | Path, seed: int) -> dict:  # fmt: skip
    """GRPO from ``base`` (the SFT model) on ``queries`` with ``reward``; saved to ``out_dir`` (reused when done).
    Returns the train info plus its budget: ``videos`` rendered and ``tokens`` generated for the reward, measured
    while it trained and kept beside the model (``reward_budget.json``), so a reused model reports them too."""
    rows = rl_rows(queries, instruction)
    build = functools.partial(trainers.build_grpo_trainer, reward_funcs=[reward])
    videos, tokens = reward.videos, reward.tokens
    # the reward's noise seeds are part of what the model is: a change retrains it
    info = trainers.train_stage(build, base, rows, [], grpo_cfg, out_dir, seed,
                                key_extra={"reward_seeds": reward.seeds})  # fmt: skip
    budget_path = Path(out_dir) / "reward_budget.json"
    if not info["reused"]:
        write_json(budget_path, {"videos": reward.videos - videos, "tokens": reward.tokens - tokens})
    return {**info, **read_json(budget_path)}
