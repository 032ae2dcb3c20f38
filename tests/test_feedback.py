"""Stage 04's feedback: the video pair rule, grouping, the merge with text pairs, resumable render + score, the
queries and samples, text feedback, and the views of it all."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from vpolib.checklist import Question, tally
from vpolib.dominance import (
    MARGIN,
    MISSING,
    NOT_DOMINANT,
    SAME,
    dominant_pairs,
    drop_reason,
    group_by_query,
    merge_pairs,
    pair_counts,
    to_trl,
    verdicts,
)
from vpolib.feedback import feedback_queries, sample_all, sample_prompts, samples_per_query
from vpolib.io import read_jsonl, write_jsonl
from vpolib.scoring import read_checklists, render_and_score, score_frame, skipped_queries
from vpolib.templates import optimize_messages
from vpolib.text_feedback import refined_summary, refined_vs_original
from vpolib.video import save_media
from vpolib.views.feedback import answer_matrix, pair_flow, pair_gallery, plot_item_agreement, plot_scores

# Three weighted items, max_score 4.0 (1 + 1 + 2).
WEIGHTS = {"a": 1.0, "b": 1.0, "c": 2.0}


def vid(answers: str, k: int = 0, qid: str = "q1", weights=WEIGHTS) -> dict:
    """A scored video from a compact answer string: 'yny' -> a=yes, b=no, c=yes; '?' = missing."""
    table = {"y": "yes", "n": "no", "?": None}
    ans = {q: table[ch] for q, ch in zip(weights, answers, strict=True)}
    score = sum(w for q, w in weights.items() if ans[q] == "yes")
    return {
        "key": f"{qid}/{k}",
        "id": qid,
        "k": k,
        "query": f"query {qid}",
        "prompt": f"prompt {qid} {k}",
        "answers": ans,
        "score": score,
        "max_score": sum(weights.values()),
        "video": f"videos/{qid}_{k}.gif",
    }


def test_dominance_with_a_win_and_enough_margin_is_a_pair():
    assert drop_reason(vid("yyy"), vid("yyn"), margin=0.5) is None  # gap 2.0 > 0.5


def test_a_single_loss_blocks_the_pair_even_with_a_large_score_gap():
    # chosen wins c (+2) but loses a (-1): score 3 vs 1, yet not dominant
    assert drop_reason(vid("nyy"), vid("yyn"), margin=0.5) == NOT_DOMINANT


def test_identical_answers_are_a_tie():
    assert drop_reason(vid("yny"), vid("yny"), margin=0.0) == SAME


def test_margin_is_strict():
    better, worse = vid("yyn"), vid("ynn")  # gap exactly 1.0
    assert drop_reason(better, worse, margin=1.0) == MARGIN
    assert drop_reason(better, worse, margin=0.999) is None


def test_zero_weight_win_is_dominant_but_inside_any_positive_margin():
    w = {"a": 1.0, "z": 0.0}
    assert drop_reason(vid("yy", weights=w), vid("yn", weights=w), margin=0.01) == MARGIN


def test_missing_answers_or_different_checklists_are_unverifiable():
    assert drop_reason(vid("yy?"), vid("nnn"), margin=0.0) == MISSING
    other = {"a": 1.0, "b": 1.0, "d": 2.0}
    assert drop_reason(vid("yyy"), vid("nnn", weights=other), margin=0.0) == MISSING


def test_dominant_pairs_margin_is_a_fraction_of_max_score():
    videos = [vid("yyn", 0), vid("ynn", 1)]  # gap 1.0 of max 4.0 = 0.25
    assert len(dominant_pairs(videos, margin_fraction=0.24)[0]) == 1
    pairs, dropped = dominant_pairs(videos, margin_fraction=0.25)
    assert pairs == [] and dropped == {MARGIN: 1}


def test_dominant_pairs_direction_order_and_drop_counts():
    videos = [vid("nnn", 0), vid("yyy", 1), vid("nyy", 2), vid("nyy", 3)]
    pairs, dropped = dominant_pairs(videos, margin_fraction=0.1)  # margin 0.4
    got = [(p["chosen"]["k"], p["rejected"]["k"]) for p in pairs]
    # 1>0 (gap 4), 2>0 and 3>0 (gap 3), 1>2 and 1>3 (gap 1); largest gap first, then by k
    assert got == [(1, 0), (2, 0), (3, 0), (1, 2), (1, 3)]
    assert dropped == {SAME: 1}  # 2 vs 3


def test_verdicts_name_the_winner_and_the_rule_that_dropped_a_pair():
    low, high, clash = vid("ynn", 0), vid("yyy", 1), vid("nny", 2)
    got = [(v["chosen"]["k"], v["rejected"]["k"], v["reason"]) for v in verdicts([low, high, clash], 0.1)]
    # 1 beats 0 (written winner first); 0 vs 2 clash, listed with the higher score (2) first; 1 beats 2
    assert got == [(1, 0, None), (2, 0, NOT_DOMINANT), (1, 2, None)]


def test_grouping_uses_query_ids_not_positions():
    # interleaved, uneven groups: the reference's "4 consecutive videos per query" would mix these
    videos = [
        vid("yyy", 0, "q1"),
        vid("nnn", 0, "q2"),
        vid("nnn", 1, "q1"),
        vid("yyy", 2, "q2"),
        vid("yyn", 1, "q2"),
        vid("nnn", 0, "q3"),
    ]
    groups = group_by_query(videos)
    assert {q: [v["k"] for v in vs] for q, vs in groups.items()} == {"q1": [0, 1], "q2": [0, 1, 2], "q3": [0]}
    pairs, dropped = dominant_pairs(videos, margin_fraction=0.1)
    assert all(p["chosen"]["id"] == p["rejected"]["id"] == p["id"] for p in pairs)
    assert sorted(p["id"] for p in pairs) == ["q1", "q2", "q2", "q2"]
    assert dropped["too_few_videos"] == 1


def test_to_trl_keeps_provenance():
    pair = dominant_pairs([vid("yyy", 0), vid("nnn", 1)], 0.1)[0][0]
    row = to_trl(pair)
    assert row["prompt"] == optimize_messages("query q1")
    assert row["chosen"] == [{"role": "assistant", "content": "prompt q1 0"}]
    assert row["rejected"] == [{"role": "assistant", "content": "prompt q1 1"}]
    assert row["scores"] == {"chosen": 4.0, "rejected": 0.0, "max_score": 4.0}
    assert row["videos"] == {"chosen": "videos/q1_0.gif", "rejected": "videos/q1_1.gif"}
    assert row["source"] == "video" and "3 item(s)" in row["why"]


def _pair(query: str, tag: str) -> dict:
    return {"id": query, "query": query, "chosen": [{"role": "assistant", "content": tag}]}


def test_merge_precedence_and_cap():
    text = [_pair("q1", "t1"), _pair("q2", "t2")]
    video = [_pair("q2", "v2a"), _pair("q2", "v2b"), _pair("q3", "v3")]
    merged, stats = merge_pairs(text, video, text_first=True, max_per_query=1)
    assert [p["chosen"][0]["content"] for p in merged] == ["t1", "t2", "v3"]
    assert stats == {
        "text": {"input": 2, "kept": 2, "dropped_cap": 0},
        "video": {"input": 3, "kept": 1, "dropped_cap": 2},
    }
    merged, stats = merge_pairs(text, video, text_first=False, max_per_query=1)
    assert [p["chosen"][0]["content"] for p in merged] == ["v2a", "v3", "t1"]
    assert [p["source"] for p in merged] == ["video", "video", "text"]
    merged, _ = merge_pairs(text, video, text_first=True, max_per_query=2)
    assert [p["chosen"][0]["content"] for p in merged] == ["t1", "t2", "v2a", "v3"]


def test_merge_matches_queries_by_text_with_surrounding_space():
    merged, stats = merge_pairs([_pair("a cat ", "t")], [_pair("a cat", "v")])
    assert len(merged) == 1 and stats["video"]["dropped_cap"] == 1


class FakeBackend:
    """Renders a video whose brightness encodes the prompt length; one question per query word."""

    def __init__(self, fail_on: str | None = None):
        self.rendered: list[str] = []
        self.fail_on = fail_on

    def render(self, prompts, seed):
        if self.fail_on in prompts:
            raise RuntimeError("render failed")
        self.rendered.extend(prompts)
        return np.stack(
            [np.full((2, 4, 4, 3), min(len(p), 255), np.uint8) for p in prompts]
        )  # [B, F, H, W, 3]

    save = staticmethod(save_media)

    def checklist(self, query):
        return [Question(w, f"is there {w}?") for w in query.split()]

    def score(self, questions, video):
        return tally(questions, [bool(video.mean() > 5)] * len(questions))


def test_render_and_score_resumes_without_rerendering(tmp_path):
    rows = [
        {"id": "q1", "query": "red ball", "prompts": ["a", "a red ball rolls"]},
        {"id": "q2", "query": "blue box", "prompts": ["a blue box", "xx"]},
    ]
    render_and_score(rows[:1], FakeBackend(), tmp_path, seed=1, batch=2)
    # a killed run: q1 finished, q2 not started; the rerun renders only q2's chunk
    second = FakeBackend()
    scored = render_and_score(rows, second, tmp_path, seed=1, batch=2)
    assert second.rendered == ["a blue box", "xx"]
    assert [v["key"] for v in scored] == ["q1/0", "q1/1", "q2/0", "q2/1"]
    assert [v["score"] for v in scored] == [0.0, 2.0, 2.0, 0.0]
    assert (tmp_path / "videos" / "q2_1.gif").stat().st_size > 0
    checklists, _ = read_jsonl(tmp_path / "checklists.jsonl")
    assert [(c["id"], [q["id"] for q in c["questions"]]) for c in checklists] == [
        ("q1", ["red", "ball"]),
        ("q2", ["blue", "box"]),
    ]


def test_render_failure_is_a_recorded_skip(tmp_path):
    rows = [
        {"id": "q1", "query": "red", "prompts": ["boom"]},
        {"id": "q2", "query": "blue", "prompts": ["ok ok"]},
    ]
    scored = render_and_score(rows, FakeBackend(fail_on="boom"), tmp_path, seed=1, batch=1)
    assert [v["id"] for v in scored] == ["q2"]
    skipped, _ = read_jsonl(tmp_path / "skips.jsonl")
    assert [s["id"] for s in skipped] == ["q1"] and "render failed" in skipped[0]["reason"]


def test_sample_prompts_resumes_by_fixed_batches(tmp_path):
    calls = []

    def sampler(queries, ids, sources=None):
        calls.append(list(ids))
        return [[q + " 1", q + " 2"] for q in queries]

    recs = [{"id": f"q{i}", "query": f"query {i}"} for i in range(3)]
    path = tmp_path / "prompts.jsonl"
    sample_prompts(recs[:2], path, sampler, batch_size=2)
    rows = sample_prompts(recs, path, sampler, batch_size=2)
    assert calls == [["q0", "q1"], ["q2"]]
    # a batch with one missing query is sampled again whole (same seed, same padding); only q1 is written
    path.write_text("\n".join(ln for ln in path.read_text().splitlines() if '"q1"' not in ln) + "\n")
    rows = sample_prompts(recs, path, sampler, batch_size=2)
    assert calls[-1] == ["q0", "q1"] and sorted(r["id"] for r in rows) == ["q0", "q1", "q2"]
    assert sorted(r["prompts"][0] for r in rows) == [f"query {i} 1" for i in range(3)]


def test_harmful_queries_get_their_own_k_in_batches_of_their_own(tmp_path):
    fb = SimpleNamespace(samples_per_query=2, harmful_samples_per_query=4)
    harm = {"flags": ["harmful"]}
    recs = [{"id": "h0", "query": "h 0", **harm}, {"id": "q0", "query": "q 0"}, {"id": "q1", "query": "q 1"},
            {"id": "h1", "query": "h 1", **harm}, {"id": "q2", "query": "q 2"}]  # fmt: skip
    assert [samples_per_query(r, fb) for r in recs] == [4, 2, 2, 4, 2]
    calls = []

    def make_sampler(batch, k):
        def sample(queries, ids, sources=None):
            calls.append((k, batch, list(ids)))
            return [[f"{q} {j}" for j in range(k)] for q in queries]

        return sample

    rows = sample_all(recs, tmp_path / "prompts.jsonl", make_sampler, fb, generation_batch=8)
    # k 2: 8 // 2 = 4 queries a call, in record order; then k 4: 8 // 4 = 2 a call
    assert calls == [(2, 4, ["q0", "q1", "q2"]), (4, 2, ["h0", "h1"])]
    assert {r["id"]: len(r["prompts"]) for r in rows} == {"q0": 2, "q1": 2, "q2": 2, "h0": 4, "h1": 4}
    # unset: one k and one pass, as sample_prompts alone
    calls.clear()
    sample_all(recs, tmp_path / "p2.jsonl", make_sampler, SimpleNamespace(samples_per_query=2,
               harmful_samples_per_query=None), generation_batch=8)  # fmt: skip
    assert calls == [(2, 4, ["h0", "q0", "q1", "h1"]), (2, 4, ["q2"])]


def test_answer_matrix_by_id_and_by_kind():
    videos = [vid("yny", 0, "q1"), vid("nn?", 1, "q1")]
    by_id = answer_matrix(videos)
    assert by_id.loc["q1/0"].tolist() == [1.0, 0.0, 1.0]
    assert by_id.loc["q1/1", "a"] == 0.0 and np.isnan(by_id.loc["q1/1", "c"])
    by_kind = answer_matrix(videos, {"q1": {"a": "colour", "b": "colour", "c": "motion"}})
    assert by_kind.loc["q1/0", "colour"] == 0.5 and by_kind.loc["q1/0", "motion"] == 1.0
    assert np.isnan(by_kind.loc["q1/1", "motion"])


def test_refined_vs_original_renders_only_refinements_of_scored_samples():
    scored = [
        {
            "key": "q1/0",
            "id": "q1",
            "k": 0,
            "query": "red ball",
            "prompt": "a",
            "score": 0.0,
            "max_score": 2.0,
        }
    ]
    pairs = [
        {"id": "q1", "chosen": [{"content": "a red ball rolls"}], "rejected": [{"content": "a"}]},
        {"id": "q9", "chosen": [{"content": "x"}], "rejected": [{"content": "never rendered"}]},
    ]
    backend = FakeBackend()
    rows = refined_vs_original(pairs, scored, backend, seed=0)
    assert backend.rendered == ["a red ball rolls"]
    assert rows == [{"id": "q1", "original": 0.0, "refined": 1.0}]


def test_feedback_queries_pick_rendered_and_text_only_ones():
    pool = [
        {"id": "s1", "query": "a ball", "source": "shapes"},
        {"id": "s2", "query": "a cube", "source": "shapes"},
        {"id": "s3", "query": " ", "source": "shapes"},  # blank: left out
        {"id": "r1", "query": "a dog", "source": "dpo"},
        {"id": "r2", "query": "a gun", "source": "dpo", "flags": ["harmful"]},
    ]
    fb = SimpleNamespace(
        queries="shapes", n_queries=1, n_text_queries=2, text_feedback=True, harmful_text_queries=None
    )
    rendered, text_only, n = feedback_queries(pool, fb)
    # s2 is renderable (not rendered: n_queries 1), so not text-only; harmful queries come first
    assert ([r["id"] for r in rendered], [r["id"] for r in text_only], n) == (["s1"], ["r2", "r1"], 2)
    assert feedback_queries(pool, SimpleNamespace(**{**vars(fb), "text_feedback": False}))[1] == []
    with pytest.raises(ValueError, match="no usable queries"):
        feedback_queries(pool, SimpleNamespace(**{**vars(fb), "queries": "vbench"}))


def test_skips_scores_and_checklists_from_the_stage_folder(tmp_path):
    scored = [vid("yyn", 0, "q1"), vid("nnn", 1, "q1")]
    assert skipped_queries(tmp_path, scored) == {}  # no skips.jsonl
    write_jsonl(
        tmp_path / "skips.jsonl", [{"id": "q1", "reason": "later done"}, {"id": "q2", "reason": "OOM"}]
    )
    assert skipped_queries(tmp_path, scored) == {"q2": "OOM"}
    with pytest.raises(RuntimeError, match="no video was scored"):
        skipped_queries(tmp_path, [])
    assert list(score_frame(scored)["fraction"]) == [0.5, 0.0]  # (1 + 1) / 4, 0 / 4
    write_jsonl(tmp_path / "checklists.jsonl", [{"id": "q1", "query": "x", "questions": [{"id": "a"}]}])
    assert read_checklists(tmp_path) == {"q1": [{"id": "a"}]}


def test_pair_counts_and_flow():
    scored = [vid("yyy", 0), vid("nnn", 1), vid("ynn", 2), vid("yyy", 0, "q2")]
    pairs, dropped = dominant_pairs(scored, 0.0)
    counts = pair_counts(scored, pairs, dropped, pairs[:1])
    # q1: 3 videos, 3 unordered pairs, all dominant with a win; q2: one video
    assert counts == {
        "video_pairs_compared": 3,
        "video_pairs_valid": 3,
        "video_pairs_dropped": {MISSING: 0, NOT_DOMINANT: 0, SAME: 0, MARGIN: 0},
        "queries_too_few_videos": 1,
        "pair_yield": 0.5,
        "video_pairs_written": 1,
    }
    contest = {"both": 1, "text_won": 1, "video_won": 0}
    merge = {"text": {"kept": 1, "dropped_cap": 0}, "video": {"kept": 0, "dropped_cap": 1}}
    flow = dict(pair_flow(counts, pairs, [{}], contest, merge, 1).values.tolist())
    assert flow["valid video pairs"] == 3 and flow["queries with at least one valid pair"] == 1
    assert (
        flow["merged pairs -> pairs.jsonl"] == 1
        and flow["merged: video kept / dropped by the cap"] == "0 / 1"
    )


def test_refined_summary():
    rows = [
        {"id": "a", "original": 0.25, "refined": 0.75},
        {"id": "b", "original": 0.5, "refined": 0.5},
        {"id": "c", "original": 0.5, "refined": 0.25},
    ]
    assert refined_summary(rows) == {"n": 3, "original": 0.4167, "refined": 0.5, "better": 1, "worse": 1}
    assert refined_summary([]) == {"n": 0, "original": None, "refined": None, "better": 0, "worse": 0}


def test_pair_gallery_and_figures(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    scored = [vid("yyy", 0), vid("nny", 1), vid("yny", 0, "q2"), vid("yny", 1, "q2")]
    pairs, dropped = dominant_pairs(scored, 0.0)
    merged = [{**to_trl(pairs[0]), "source": "video"}]
    checklists = {q: [{"id": i, "text": f"item {i}", "kind": "k"} for i in WEIGHTS] for q in ("q1", "q2")}
    entries = pair_gallery(scored, checklists, pairs, merged, 0.0, size=5)
    assert [e[0] for e in entries] == ["### `q1` · query q1", "### `q2` · query q2"]  # with a pair first
    heading, html, verdicts = entries[0]
    assert '<img src="videos/q1_0.gif" width="96">' in html and "✓" in html and "✗" in html
    assert verdicts.startswith("- pair: k=0 over k=1") and verdicts.endswith(
        f"**Pair kept in the merge:** {merged[0]['why']}"
    )
    assert entries[1][2] == "- k=0 vs k=1: no pair (no_win)\n\n**Pair kept in the merge:** none"
    assert len(pair_gallery(scored, checklists, pairs, merged, 0.0, size=1)) == 1
    plot_scores(score_frame(scored), dropped, len(pairs), 0.1).savefig(tmp_path / "scores.png")
    plot_item_agreement(scored, checklists).savefig(tmp_path / "items.png")
    assert (tmp_path / "scores.png").stat().st_size > 0 and (tmp_path / "items.png").stat().st_size > 0


def test_sampler_samples_with_the_feedback_settings(monkeypatch):
    import vpolib.generation as generation

    seen = {}
    monkeypatch.setattr(
        generation, "generate_prompts", lambda *args, **kw: seen.update(args=args, kw=kw) or [["p"]]
    )
    fb = SimpleNamespace(samples_per_query=4, temperature=0.9, top_p=0.8, max_new_tokens=32)
    sample = generation.sampler("model", "tok", fb, "short", seed=7, batch_size=2)
    assert sample(["a dog"], ["q1"], ["shapes"]) == [["p"]] and seen["args"] == ("model", "tok", ["a dog"])
    assert seen["kw"] == {
        "n": 4,
        "temperature": 0.9,
        "top_p": 0.8,
        "max_new_tokens": 32,
        "batch_size": 2,
        "instruction": "short",
        "seed": 7,
        "sources": ["shapes"],
    }
    generation.sampler("model", "tok", fb, "short", seed=7, batch_size=2, n=12)(["a dog"], ["q1"])
    assert seen["kw"]["n"] == 12  # a k of its own (harmful-flagged queries)
