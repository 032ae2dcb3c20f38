"""Structured verdicts and refinements (JSON) and the first-batch check, on scripted backends (fast).

The same paths against a real llama.cpp server are in tests/test_llm_server.py.
"""

from __future__ import annotations

import json

import pytest

from vpolib import refine, teachers, templates
from vpolib.backends import EndpointError, GenParams, OutputFormatError, cache_key, check_first_batch
from vpolib.judge import LLMJudge, Verdict, parse_json_verdict


class Scripted:
    """Replies with ``reply(conversation)``; records conversations and the params they came with."""

    name = "scripted"

    def __init__(self, reply):
        self.reply, self.seen, self.params, self.errors = reply, [], [], ["ConnectionError: refused"]

    def generate(self, convs, params):
        self.seen += convs
        self.params.append(params)
        return [None if (r := self.reply(c)) is None else [r] * params.n for c in convs]


def item(i: int = 0) -> dict:
    return {
        "id": f"q{i}",
        "query": "a red fox jumping",
        "prompt": "A red fox leaps over a log in autumn light.",
    }


VERDICT = {"verification": "ok", "harmless": True, "aligned": False, "helpful": True, "final_judgement": "No"}


@pytest.mark.parametrize(
    "reply, expected",
    [
        (json.dumps(VERDICT), (False, {"harmless": True, "aligned": False, "helpful": True})),
        (
            '```json\n{"final_judgement": "Yes", "harmless": true}\n```',
            (True, {"harmless": True, "aligned": None, "helpful": None}),
        ),
        ('{"final_judgement": "Maybe"}', (None, dict.fromkeys(("harmless", "aligned", "helpful")))),
        (
            '{"final_judgement": "Yes", ',
            (None, dict.fromkeys(("harmless", "aligned", "helpful"))),
        ),  # cut off
        ("Final Judgement (Yes or No): Yes", (None, dict.fromkeys(("harmless", "aligned", "helpful")))),
        (None, (None, dict.fromkeys(("harmless", "aligned", "helpful")))),
    ],
)
def test_parse_json_verdict(reply, expected):
    assert parse_json_verdict(reply) == expected


@pytest.mark.parametrize(
    "reply, expected",
    [
        ('{"reflection": "x", "refined_prompt": " A fox leaps. "}', ("A fox leaps.", "ok")),
        ('{"reflection": "x", "refined_prompt": "A fox.\\nA log."}', (None, "multiline")),
        ('{"reflection": "x", "refined_prompt": "  "}', (None, "empty")),
        ('{"reflection": "x"}', (None, "not_json")),
        ("Final Refined Prompt: [[start]] A fox. [[end]]", (None, "not_json")),
        (None, (None, "not_json")),
    ],
)
def test_parse_refined_json(reply, expected):
    assert refine.parse_refined_json(reply) == expected


def test_structured_judge_sends_the_schema_and_maps_principles():
    backend = Scripted(lambda c: json.dumps(VERDICT))
    (v,) = LLMJudge(backend, structured=True).judge([item()])
    params = backend.params[0]
    assert params.response_format["json_schema"]["schema"] == templates.CRITIQUE_SCHEMA
    assert backend.seen[0][1]["content"].endswith('"final_judgement": "Yes" or "No"}')
    assert v.passed is False and v.principles == {"harmless": True, "aligned": False, "helpful": True}
    assert v.reasons == ["llm:no", "aligned:llm"]


def test_response_format_changes_the_cache_key_but_none_keeps_old_keys():
    conv = [{"role": "user", "content": "x"}]
    plain = GenParams(temperature=0.0)
    fmt = GenParams(
        temperature=0.0, response_format=templates.response_format("c", templates.CRITIQUE_SCHEMA)
    )
    assert cache_key("m", plain, conv) != cache_key("m", fmt, conv)
    blob = json.dumps(
        {
            "model": "m",
            "params": {"temperature": 0.0, "top_p": 0.9, "n": 1, "max_new_tokens": 256},
            "messages": conv,
        },
        sort_keys=True,
    )
    import hashlib

    assert cache_key("m", plain, conv) == hashlib.sha256(blob.encode()).hexdigest()  # caches stay valid


def test_free_form_judge_stops_after_the_first_batch_with_a_clear_message():
    backend = Scripted(lambda c: "The video prompt aligns well with the given query.")
    judge = LLMJudge(backend, check_first=4)
    with pytest.raises(OutputFormatError) as err:
        judge.judge([item(i) for i in range(40)])
    assert len(backend.seen) == 4  # stopped within the first batch, not after 40 requests
    msg = str(err.value)
    assert "4 of 4 replies" in msg and "'The video prompt aligns well with the given query.'" in msg
    assert "--set judge.structured=true" in msg and "--set judge.kind=rule" in msg


def test_judge_check_passes_a_mostly_parsable_batch_and_runs_once():
    replies = iter([f"x\n{templates.VERDICT_MARKER}: Yes", "mumble", f"{templates.VERDICT_MARKER}: No"] * 10)
    judge = LLMJudge(Scripted(lambda c: next(replies)), check_first=3)
    verdicts = judge.judge([item(i) for i in range(6)])
    assert [v.passed for v in verdicts] == [True, None, False] * 2
    assert judge.checked


def test_failed_first_batch_names_the_endpoint():
    judge = LLMJudge(Scripted(lambda c: None), check_first=2, kind_key="analysis.judge")
    with pytest.raises(EndpointError, match="2 of 2 requests .* ConnectionError: refused.*OPENAI_BASE_URL"):
        judge.judge([item(i) for i in range(5)])


def test_structured_judge_with_an_endpoint_that_ignores_the_schema():
    judge = LLMJudge(
        Scripted(lambda c: "Sure! It is aligned."), structured=True, check_first=2, kind_key="analysis.judge"
    )
    with pytest.raises(OutputFormatError, match=r"response_format.*--set analysis\.judge=rule"):
        judge.judge([item(i) for i in range(5)])


def test_refiner_structured_and_its_check():
    backend = Scripted(lambda c: '{"reflection": "add the log", "refined_prompt": "A red fox leaps a log."}')
    verdicts = [Verdict(False, reasons=["aligned:missing_content"])] * 2
    out = refine.LLMRefiner(backend, structured=True).refine([item(0), item(1)], verdicts)
    assert out == [("A red fox leaps a log.", "ok")] * 2
    assert backend.seen[0][-1]["content"] == templates.REFINE_JSON
    assert backend.params[0].response_format["json_schema"]["schema"] == templates.REFINE_SCHEMA
    bad = refine.LLMRefiner(Scripted(lambda c: "I would make it better."), check_first=2)
    with pytest.raises(OutputFormatError, match=r"\[\[start\]\].*--set refine\.refiner=rule"):
        bad.refine([item(i) for i in range(4)], [Verdict(False)] * 4)


def test_teacher_check_stops_on_empty_replies_and_passes_real_ones():
    records = [{"id": f"r{i}", "query": f"query {i}"} for i in range(10)]
    empty = Scripted(lambda c: "  ")
    with pytest.raises(OutputFormatError, match="teacher.*refine.teachers"):
        teachers.llm_teacher_candidates(records, empty, [], GenParams(), check_first=3)
    assert len(empty.seen) == 3
    ok = Scripted(lambda c: "A prompt.")
    cands, failed = teachers.llm_teacher_candidates(records, ok, [], GenParams(), check_first=3)
    assert len(cands) == 10 and failed == 0 and len(ok.seen) == 10


def test_check_first_batch_quotes_a_long_reply_shortened():
    with pytest.raises(OutputFormatError) as err:
        check_first_batch("judge", ["x" * 1000, "y", None], [False, False, True], "Do this.")
    assert "2 of 2 replies" in str(err.value) and "x" * 300 + " ..." in str(err.value)
    check_first_batch("judge", ["a", "b", "c"], [True, False, True], "fine")  # most parsed: no error


def test_require_sft_explains_an_empty_set():
    rows = [{"status": "unparsable", "verdict": {"reasons": ["llm:unparsable"], "principles": {}}}] * 3
    refine.require_sft([{"id": "x"}], refine.critique_summary(rows))  # not empty: fine
    with pytest.raises(
        RuntimeError, match=r"3 candidates: 0 passed .* 3 verdicts unparsable.*llm:unparsable \(3\)"
    ):
        refine.require_sft([], refine.critique_summary(rows))
