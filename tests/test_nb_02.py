"""Notebook 02 on the smoke profile (run once for the whole chain by the smoke_run fixture)."""

import pytest

from vpolib.io import read_jsonl
from vpolib.templates import TARGETS

pytestmark = pytest.mark.notebook


def test_02_refine(smoke_stage):
    run_dir, stage, m = smoke_stage("02_refine")
    n = m["n_candidates"]
    assert n == sum(m["candidates_per_teacher"].values()) > 0
    assert m["n_pass"] + m["n_refined"] + m["n_refine_failed"] + m["n_unparsable"] == n
    # smoke: 8 VBench queries per set (GPT-4o for both sets, Wan2.1 for one), every ShapesWorld SFT query by
    # the ShapesWorld teacher, 4 real queries templated and the same 4 through tiny-llama
    assert (
        m["candidates_per_teacher"] == {"gpt4o": 16, "wan": 8, "shapes": 24, "compose": 4, "llm0": 4}
        and n == 56
    )
    # one example per query; the 4 real queries (one harmful: refine.harmful_share 0.25) reach the set unless the
    # judge fails a composed prompt twice
    assert 3 <= m["sft_by_source"]["sft"] <= 4 and sum(m["sft_by_source"].values()) == m["n_sft"]
    assert all(0 <= m[f"pass_rate_{p}"] <= 1 for p in ("harmless", "aligned", "helpful"))
    log = read_jsonl(stage / "critique_log.jsonl")[0]
    assert len(log) == n == len({r["id"] for r in log})  # one line per candidate, no duplicates
    sft = read_jsonl(stage / "sft.jsonl")[0]
    assert len(sft) == m["n_sft"] > 0 and len({r["query"] for r in sft}) == len(sft)
    for r in sft:
        assert set(r) == {"id", "query", "source", "prompt", "origin", "messages"} and r["origin"] in (
            "teacher",
            "refined",
        )
        assert [x["role"] for x in r["messages"]] == ["user", "assistant"] and r["messages"][1][
            "content"
        ] == r["prompt"]
    named = {r["source"]: TARGETS["shapes"] in r["messages"][0]["content"] for r in sft}
    assert named["shapes"] and not any(v for k, v in named.items() if k != "shapes")  # only ShapesWorld's
    pairs = read_jsonl(stage / "text_pairs.jsonl")[0]
    assert len(pairs) == m["n_text_pairs"] <= m["n_refined"]
    for p in pairs:
        assert p["source"] == "text" and p["chosen"][0]["content"] != p["rejected"][0]["content"]
        assert p["prompt"][0]["role"] == "user" and p["chosen"][0]["role"] == "assistant"
    assert m["candidates_per_teacher"]["shapes"] == 24  # smoke: every ShapesWorld SFT query, by the teacher
    modes = {r["mode"]: r for r in m["shapes_teacher_modes"]}
    assert sum(r["prompts"] for r in modes.values()) >= 24 and 0 <= modes["synonym"]["judge pass rate"] <= 1
    # validation_per_kind 8 items of every kind; VBench has Wan2.1 expansions for one set only
    sizes = {r["kind"]: r["n"] for r in m["judge_validation"]["by_kind"]}
    assert sizes == dict.fromkeys(sizes, 8) | {"own_wan": 4} and len(sizes) == 8
    rates = {r["principle"]: r for r in m["judge_validation"]["rates"]}
    # the lexicon sees every harmful sentence in lexicon words (half of the harmful items), the -neg check every
    # neg item: detection rates are at least those shares
    assert rates["harmless"]["detection_rate"] >= 0.5 and rates["aligned"]["detection_rate"] >= 0.5
    assert (stage / "sft_dataset" / "dataset_info.json").exists()
    assert (stage / "figures" / "reasons.png").stat().st_size > 0
    assert "## Before / after" in (stage / "report.md").read_text()
