"""Checklist rewards: a query's weighted yes/no questions, their answers, and the weighted sum of "yes".

Every video reward in the project has this form (VisionReward-Video's 64 questions, ShapesWorld's detector
checklist, the frame-statistics checks here): a video scores the weights of the questions it answers "yes".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Question:
    """One checklist item; ``weight`` is added to the score when the answer is "yes"; ``target`` holds what a
    detector looks for (ShapesWorld)."""

    id: str
    text: str
    weight: float = 1.0
    kind: str = "quality"
    target: dict = field(default_factory=dict, compare=False)


def question_records(questions: list[Question]) -> list[dict]:
    """A checklist as ``checklists.jsonl`` keeps it: one ``{"id", "text", "weight", "kind"}`` per question."""
    return [{"id": str(q.id), "text": q.text, "weight": q.weight, "kind": q.kind} for q in questions]


def normalise_answer(answer) -> str | None:
    """An answer as "yes" or "no": bools and yes/no strings (any case, spaces); anything else is ``None``
    (missing), which the pair rule treats as unverifiable rather than as "no"."""
    if isinstance(answer, (bool, np.bool_)):
        return "yes" if answer else "no"
    answer = answer.strip().lower() if isinstance(answer, str) else None
    return answer if answer in ("yes", "no") else None


def answer_value(answer) -> float | None:
    """An answer as 1.0 ("yes"), 0.0 ("no") or None (missing, unanswerable)."""
    return {"yes": 1.0, "no": 0.0}.get(normalise_answer(answer))


def tally(questions: list[Question], answers: list) -> dict:
    """``{"answers": {id: "yes"|"no"|None}, "score", "max_score"}`` from per-question answers."""
    norm = {str(q.id): normalise_answer(a) for q, a in zip(questions, answers, strict=True)}
    return {
        "answers": norm,
        "score": float(sum(q.weight for q in questions if norm[str(q.id)] == "yes")),
        "max_score": float(sum(max(q.weight, 0.0) for q in questions)),
    }


@dataclass
class ChecklistReward:
    """VisionReward-style reward: a query's checklist answered yes/no by ``answer``, weighted sum of "yes".

    ``checklist(query) -> list[Question]``; ``answer(video [F, H, W, 3] uint8, questions) -> answers``.
    The full profile plugs in VisionReward-Video's 64 questions, weights and VLM answers (vpolib.visionreward).
    """

    checklist: Callable[[str], list[Question]]
    answer: Callable[[np.ndarray, list[Question]], list]

    def score(self, questions: list[Question], video: np.ndarray) -> dict:
        return tally(questions, self.answer(video, questions))


FRAME_STATS = [  # a crude but real pixel-level checklist, enough to exercise the CogVideoX path on CPU
    Question("not_blank", "Is the video not blank (pixel std > 0.05)?", 1.0),
    Question("moves", "Does anything move (mean frame difference > 0.01)?", 1.0),
    Question("exposed", "Is it neither too dark nor too bright (mean in [0.15, 0.85])?", 1.0),
]


def frame_stats_checklist(query: str) -> list[Question]:
    """The pixel-statistics stand-in for a query's checklist (the same for every query): no VLM needed."""
    return list(FRAME_STATS)


def frame_stats_answer(video: np.ndarray, questions: list[Question]) -> list[bool]:
    """Answers to :data:`FRAME_STATS` for one uint8 video ``[F, H, W, 3]``."""
    v = video.astype(np.float32) / 255.0  # [F, H, W, 3]
    motion = float(np.abs(np.diff(v, axis=0)).mean()) if len(v) > 1 else 0.0
    facts = {"not_blank": v.std() > 0.05, "moves": motion > 0.01, "exposed": 0.15 <= v.mean() <= 0.85}
    return [bool(facts[q.id]) for q in questions]
