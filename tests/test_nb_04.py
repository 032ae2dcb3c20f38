"""Notebook 04 on the smoke profile (run once for the whole chain by the smoke_run fixture)."""

from collections import Counter

import pytest

from vpolib.config import load_config
from vpolib.io import read_jsonl

pytestmark = pytest.mark.notebook


def test_04_feedback(smoke_stage):
    run_dir, stage, m = smoke_stage("04_feedback")
    fb = load_config("smoke").feedback
    # 6 of the 16 ShapesWorld DPO queries, 4 samples each, 2 seeds each; 4 real queries for text feedback only
    assert (
        (m["n_queries"], m["n_skipped_queries"], m["n_text_only_queries"])
        == (fb.n_queries, 0, 4)
        == (6, 0, 4)
    )
    assert m["pairing"] == fb.pairing == "onpolicy" and m["reward_seeds"] == fb.reward_seeds == 2
    assert m["n_videos"] == m["n_queries"] * fb.samples_per_query * fb.reward_seeds == 48
    assert m["tokens_generated"] > 0
    scores, _ = read_jsonl(stage / "scores.jsonl")
    assert len({v["key"] for v in scores}) == len(scores) == m["n_videos"]  # nothing scored twice
    assert Counter(v["seed_index"] for v in scores) == {0: 24, 1: 24}
    assert all(0 <= v["score"] <= v["max_score"] for v in scores)
    assert all((stage / v["video"]).stat().st_size > 0 for v in scores if v["seed_index"] == 0)
    # every rendered query either gave a video pair or was dropped for one reason
    video = m["tracks"]["video"]
    assert video["pairs"] + sum(video["dropped"].values()) == m["n_queries"]
    assert video["dominant"] <= video["pairs"]
    # every judged query (rendered + text-only) gave a text pair of one kind or was dropped for one reason
    text = m["tracks"]["text"]
    assert text["own"] + text["refined_fallback"] == text["pairs"]
    assert text["pairs"] + sum(text["dropped"].values()) == m["n_queries"] + m["n_text_only_queries"]
    pairs, errors = read_jsonl(stage / "pairs.jsonl")
    assert not errors and len(pairs) == m["pairs_written"] == text["pairs"] + video["pairs"]
    # a query gives at most one pair of each kind
    assert max(Counter((p["id"], p["source"]) for p in pairs).values()) == 1
    for p in pairs:
        assert (
            p["prompt"][0]["role"] == "user"
            and p["chosen"][0]["role"] == p["rejected"][0]["role"] == "assistant"
        )
        if p["source"] == "video":
            mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
            assert mean(p["rewards"]["chosen"]) - mean(p["rewards"]["rejected"]) > fb.margin
            assert len(p["rewards"]["chosen"]) == fb.reward_seeds and (stage / p["videos"]["chosen"]).exists()
    # the paper's set from the same samples: text first, one pair per query, dominance + margin on the first seed
    paper = m["paper"]
    assert paper["video_pairs_compared"] == 6 * 6  # every unordered pair of a query's 4 first-seed videos
    assert (
        paper["video_pairs_valid"] + sum(paper["video_pairs_dropped"].values())
        == paper["video_pairs_compared"]
    )
    paper_pairs, _ = read_jsonl(stage / "paper_pairs.jsonl")
    assert len(paper_pairs) == paper["pairs"] == sum(s["kept"] for s in paper["merge"].values())
    assert max(Counter(p["query"].strip() for p in paper_pairs).values()) <= fb.max_pairs_per_query
    assert paper["contest"]["text_won"] == paper["contest"]["both"] and paper["contest"]["video_won"] == 0
    for p in paper_pairs:
        if p["source"] == "video":
            assert p["scores"]["chosen"] - p["scores"]["rejected"] > fb.margin * p["scores"]["max_score"]
