"""Notebook 04 on the smoke profile (run once for the whole chain by the smoke_run fixture)."""

from collections import Counter

import pytest

from vpolib.config import load_config
from vpolib.io import read_jsonl

pytestmark = pytest.mark.notebook


def test_04_feedback(smoke_stage):
    run_dir, stage, m = smoke_stage("04_feedback")
    fb = load_config("smoke").feedback
    # 6 of the 16 ShapesWorld DPO queries, 4 samples each; 4 real queries for text feedback only
    assert (
        (m["n_queries"], m["n_skipped_queries"], m["n_text_only_queries"])
        == (fb.n_queries, 0, 4)
        == (6, 0, 4)
    )
    assert m["n_videos"] == m["n_queries"] * fb.samples_per_query == 24
    assert m["video_pairs_compared"] == 6 * 6  # every unordered pair of a query's 4 videos: 4 * 3 / 2 = 6
    assert m["merge"]["video"]["kept"] <= m["video_pairs_written"] <= m["n_queries"]  # one pair per query
    assert m["merge"]["video"]["kept"] + m["merge"]["text"]["kept"] == m["pairs_written"]
    scores, _ = read_jsonl(stage / "scores.jsonl")
    assert len({v["key"] for v in scores}) == len(scores) == m["n_videos"]  # nothing scored twice
    assert all((stage / v["video"]).stat().st_size > 0 and 0 <= v["score"] <= v["max_score"] for v in scores)
    # every compared video pair is either a pair or dropped by exactly one rule
    assert m["video_pairs_valid"] + sum(m["video_pairs_dropped"].values()) == m["video_pairs_compared"]
    text = m["text_feedback"]
    assert text["samples"] == (m["n_queries"] + m["n_text_only_queries"]) * fb.samples_per_query
    assert text["pass"] + text["refined"] + text["refine_failed"] + text["unparsable"] == text["samples"]
    assert (
        len(read_jsonl(stage / "text_pairs.jsonl")[0])
        == text["queries_with_pair"]
        == m["merge"]["text"]["input"]
    )
    # text pairs come first: a query with both kinds keeps its text pair (the reference's merge rule)
    assert m["contest"]["text_won"] == m["contest"]["both"] and m["contest"]["video_won"] == 0
    assert m["refined_video"]["n"] <= text["queries_with_pair"]
    pairs, errors = read_jsonl(stage / "pairs.jsonl")
    assert not errors and len(pairs) == m["pairs_written"] == sum(s["kept"] for s in m["merge"].values())
    assert max(Counter(p["query"].strip() for p in pairs).values()) <= fb.max_pairs_per_query
    for p in pairs:
        assert (
            p["prompt"][0]["role"] == "user"
            and p["chosen"][0]["role"] == p["rejected"][0]["role"] == "assistant"
        )
        if p["source"] == "video":
            s = p["scores"]
            assert s["chosen"] - s["rejected"] > fb.margin * s["max_score"]
            assert (stage / p["videos"]["chosen"]).exists() and (stage / p["videos"]["rejected"]).exists()
