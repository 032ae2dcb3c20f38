"""Checklist rewards: a query's weighted yes/no questions, their answers, and the weighted sum of "yes".

Every video reward in the project has this form (VisionReward-Video's 64 questions, ShapesWorld's detector
checklist, the frame-statistics checks): a video scores the weights of the questions it answers "yes".
"""

from __future__ import annotations

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
