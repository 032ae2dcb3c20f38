"""Baseline prompt rewriters for later comparison with the trained optimizer.

Each maps a list of queries to a list of prompts: the raw query, a rule-based expansion, and a
few-shot rewriter in the style of CogVideoX's prompt extension (through any backend).
"""

from __future__ import annotations

from vpolib.backends import GenParams
from vpolib.tags import parse_tags
from vpolib.templates import COGVIDEOX_SYSTEM, few_shot_messages, plain_user

RULE_SUFFIX = (
    "shown in a single continuous shot. The scene is clearly lit with soft natural light and rich, "
    "realistic detail; the camera moves slowly and smoothly with the main subject, and the motion "
    "stays fluid and coherent throughout."
)


def raw_query(queries: list[str]) -> list[str]:
    """The unchanged query (the 'no optimization' baseline)."""
    return list(queries)


def rule_expand(query: str) -> str:
    """A deterministic expansion: the query's content (tags removed, a ``-camera`` move kept), then generic
    quality and camera detail. ``-neg`` items and format tags are dropped, as the critique rules allow."""
    parsed = parse_tags(query)
    camera = [t.value for t in parsed.tags if t.name == "camera" and t.value]
    text = " ".join(parsed.content.split()).rstrip(" .,;")
    if not text:
        return ""
    text = f"{text[:1].upper()}{text[1:]}, {RULE_SUFFIX}"
    return text + "".join(f" Camera: {c.strip()}." for c in camera)


def rule_expansion(queries: list[str]) -> list[str]:
    """:func:`rule_expand` over a list."""
    return [rule_expand(q) for q in queries]


class FewShotRewriter:
    """CogVideoX-style prompt extension: a system prompt, a few example rewrites, then the query."""

    def __init__(self, backend, examples: list[tuple[str, str]], params: GenParams | None = None):
        self.backend, self.examples = backend, examples
        self.params = params or GenParams(temperature=0.7, top_p=0.9, n=1, max_new_tokens=200)

    def __call__(self, queries: list[str]) -> list[str | None]:
        convs = [
            few_shot_messages(q, self.examples, system=COGVIDEOX_SYSTEM, wrap=plain_user) for q in queries
        ]
        return [t[0] if t else None for t in self.backend.generate(convs, self.params)]


def shapes_teacher(queries: dict[str, str], seed: int, rates: dict | None = None) -> dict[str, str]:
    """``{id: prompt}`` by the ShapesWorld teacher (:mod:`vpolib.shapesworld.teacher`), the SFT data's source."""
    # here, not at the top: vpolib.shapesworld's package loads torch and the video pipeline, which the real-query
    # rewriters never need
    from vpolib.shapesworld.teacher import TeacherRates, teacher_prompt

    return {i: teacher_prompt(q, seed, TeacherRates(**(rates or {})))[0] for i, q in queries.items()}
