"""The ShapesWorld teacher: deterministic, fails at its configured rates, and writes the world's words when it
does not fail."""

from collections import Counter

from vpolib.shapesworld import make_queries
from vpolib.shapesworld.teacher import TeacherRates, teacher_prompt


def test_teacher_is_deterministic_and_reads_only_the_query():
    a = teacher_prompt("scarlet block sliding right -neg blue -ar 16:9", seed=3)
    assert a == teacher_prompt("scarlet block sliding right -neg blue -ar 16:9", seed=3)
    assert "16:9" not in a[0] and "blue" not in a[0]  # format tags dropped, -neg items never named


def test_a_teacher_without_failures_writes_the_caption_style():
    none = TeacherRates(synonym=0, motion_paraphrase=0, padding=0, detail=0, drop=0, invent=0)
    text, used = teacher_prompt("scarlet block going right on black", seed=0, rates=none)
    assert (text, used) == ("A red square moves from the left to the right on a black background.", [])


def test_failure_modes_appear_at_their_rates():
    queries = [q["query"] for q in make_queries(400, seed=5)]
    rates = TeacherRates(synonym=0.3, motion_paraphrase=0.3, padding=0.3, detail=0.3, drop=0.1, invent=0.15)
    seen = Counter(m for q in queries for m in teacher_prompt(q, 1, rates)[1])
    assert abs(seen["padding"] / len(queries) - 0.3) < 0.07
    assert abs(seen["drop"] / len(queries) - 0.1) < 0.05
    assert seen["synonym"] > 0.3 * len(queries)  # per attribute, so most prompts with 2+ attributes
    padded = next(
        teacher_prompt(q, 1, rates)[0] for q in queries if "padding" in teacher_prompt(q, 1, rates)[1]
    )
    assert len(padded.split()) > 20  # the key words come after the text encoder's window starts filling
