"""On-policy pairs (vpolib/preference.py): rewards averaged over seeds, the gap rule, the text track, resume."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from test_feedback import FakeBackend, vid

from vpolib import preference
from vpolib.io import read_jsonl
from vpolib.noise import reward_seed, video_seed
from vpolib.scoring import render_and_score


def seeded(answers_by_seed: list[str], k: int, qid: str = "q1") -> list[dict]:
    """One sample's scored videos, one per seed (compact answers as in test_feedback.vid)."""
    return [
        {**vid(a, k, qid), "seed_index": s, "prompt": f"prompt {qid} {k}"}
        for s, a in enumerate(answers_by_seed)
    ]


def test_reward_is_the_mean_over_seeds_and_samples_are_ordered_by_k():
    scored = seeded(["yyy", "nnn"], 1) + seeded(["yny", "yny"], 0)  # max 4: (4 + 0) / 2 and (3 + 3) / 2
    samples = preference.sample_rewards(scored)["q1"]
    assert [s["k"] for s in samples] == [0, 1]
    assert [s["per_seed"] for s in samples] == [[0.75, 0.75], [1.0, 0.0]]
    assert [s["reward"] for s in samples] == [0.75, 0.5]
    assert samples[1]["first"]["answers"] == {"a": "yes", "b": "yes", "c": "yes"}  # seed 0's video


def test_gap_rule_pairs_best_and_worst_past_the_margin():
    scored = seeded(["yyy", "yyy"], 0) + seeded(["nny", "ynn"], 1) + seeded(["nnn", "nnn"], 2)
    samples = preference.sample_rewards(scored)["q1"]  # rewards 1.0, (0.5 + 0.25) / 2 = 0.375, 0.0
    pair, reason = preference.video_pair(samples, margin=0.9)
    assert reason is None and (pair["chosen"]["k"], pair["rejected"]["k"]) == (0, 2) and pair["dominant"]
    assert preference.video_pair(samples, margin=1.0) == (None, preference.NO_GAP)  # strict: 1.0 is not > 1.0


def test_ties_give_no_pair_and_break_to_the_lower_k():
    samples = preference.sample_rewards(seeded(["yny"], 0) + seeded(["yny"], 1) + seeded(["yny"], 2))["q1"]
    best, worst = preference.best_and_worst(samples)
    assert (best["k"], worst["k"]) == (0, 0)
    assert preference.video_pair(samples, margin=0.0) == (None, preference.NO_GAP)
    assert preference.video_pair(samples[:1], margin=0.0) == (None, preference.TOO_FEW)


def test_dominance_rule_drops_a_gap_pair_that_loses_an_item_on_its_first_seed():
    # best: first seed a=yes b=yes c=no (2/4), second all yes (4/4): mean 0.75; worst: 1/4 then 0: mean 0.125
    scored = seeded(["yyn", "yyy"], 0) + seeded(["ynn", "nnn"], 1)
    scored[2]["answers"] = {"a": "no", "b": "no", "c": "yes"}  # worst's first seed says yes on c (weight 2)
    scored[2]["score"] = 2.0
    samples = preference.sample_rewards(scored)["q1"]  # best 0.75, worst (0.5 + 0) / 2 = 0.25
    gap, _ = preference.video_pair(samples, margin=0.3, rule="gap")
    assert gap is not None and not gap["dominant"]
    assert preference.video_pair(samples, margin=0.3, rule="dominance") == (None, preference.NOT_DOMINANT)
    with pytest.raises(ValueError, match="gap or dominance"):
        preference.video_pair(samples, 0.3, rule="best")


def test_video_pairs_count_every_query_once():
    scored = seeded(["yyy"], 0) + seeded(["nnn"], 1) + seeded(["yny"], 0, "q2") + seeded(["yny"], 1, "q2")
    rows, dropped = preference.video_pairs(scored, margin=0.1, instruction="short")
    assert [r["id"] for r in rows] == ["q1"] and dropped == {preference.NO_GAP: 1}
    row = rows[0]
    assert row["chosen"][0]["content"] == "prompt q1 0" and row["rejected"][0]["content"] == "prompt q1 1"
    assert row["source"] == "video" and row["rewards"] == {"chosen": [1.0], "rejected": [0.0]}
    assert row["prompt"][0]["role"] == "user" and "k=0 over k=1" in row["why"]


def critique(qid: str, k: int, status: str, prompt: str | None = None, refined: str | None = None) -> dict:
    return {"id": f"{qid}:sft{k}", "query_id": qid, "query": f"query {qid}", "source": "vpo",
            "prompt": prompt or f"sample {qid} {k}", "status": status, "refined": refined,
            "verdict": {"reasons": [f"reason {k}"]}}  # fmt: skip


def test_text_track_prefers_the_models_own_passing_sample():
    logged = [
        critique("a", 1, "pass"),
        critique("a", 0, "refine_failed"),
        critique("a", 2, "refined", refined="fix"),
    ]
    pair, reason = preference.text_pair(preference.group_critiques(logged)["a"])
    assert reason is None and pair == {
        "chosen": "sample a 1",
        "rejected": "sample a 0",
        "kind": "own",
        "why": "reason 0",
    }


def test_text_track_falls_back_to_the_refinement_only_where_no_sample_passes():
    logged = [critique("b", 0, "refine_failed"), critique("b", 1, "refined", refined="a fixed prompt")]
    pair, _ = preference.text_pair(logged)
    assert (pair["chosen"], pair["rejected"], pair["kind"]) == (
        "a fixed prompt",
        "sample b 1",
        "refined_fallback",
    )
    assert preference.text_pair([critique("c", 0, "pass")]) == (None, preference.ALL_PASS)
    assert preference.text_pair([critique("d", 0, "refine_failed")]) == (None, preference.NO_PASS)
    assert preference.text_pair([critique("e", 0, "unparsable")]) == (None, preference.NO_VERDICT)
    # a passing sample with the failing one's text is no preference: the refinement stands in
    same = [critique("f", 0, "refined", "same", refined="fixed"), critique("f", 1, "pass", "same")]
    assert preference.text_pair(same)[0]["kind"] == "refined_fallback"


def test_both_tracks_enter_the_round_and_are_counted(tmp_path):
    logged = [critique("q1", 0, "pass"), critique("q1", 1, "refine_failed"), critique("r", 0, "pass")]
    text_rows, text_counts = preference.text_pairs(logged)
    video_rows, dropped = preference.video_pairs(seeded(["yyy"], 0) + seeded(["nnn"], 1), margin=0.1)
    merged = preference.write_round(tmp_path, text_rows, video_rows)
    assert [(p["id"], p["source"]) for p in merged] == [("q1", "text"), ("q1", "video")]  # one of each kind
    assert [
        len(read_jsonl(tmp_path / f)[0]) for f in ("text_pairs.jsonl", "video_pairs.jsonl", "pairs.jsonl")
    ] == [1, 1, 2]
    counts = preference.track_counts(text_rows, text_counts, video_rows, dropped)
    assert counts["text"] == {"pairs": 1, "own": 1, "refined_fallback": 0, "unsafe_rejected": 0,
                              "dropped": {"all_pass": 1, "no_passing_sample": 0, "unparsable": 0}}  # fmt: skip
    assert counts["video"] == {"pairs": 1, "dominant": 1,
                               "dropped": {"too_few_samples": 0, "within_margin": 0, "not_dominant": 0}}  # fmt: skip


def test_seeds_are_keyed_by_query_index_and_round():
    assert reward_seed(7, "q1", 0, 1) == video_seed(7, "q1")  # the paper recipe's one render
    seeds = {reward_seed(7, q, s, r) for q in ("q1", "q2") for s in (0, 1, 2) for r in (1, 2)}
    assert len(seeds) == 12  # every (query, index, round) its own noise
    assert preference.round_seed(7, 1) == 7 and preference.round_seed(7, 2) != 7


class SeedBackend(FakeBackend):
    """Renders a video whose brightness depends on the seed, so the seeds' scores differ."""

    def render(self, prompts, seed):
        self.rendered.extend(prompts)
        return np.stack(
            [np.full((2, 4, 4, 3), (len(p) + s) % 10, np.uint8) for p, s in zip(prompts, seed, strict=True)]
        )


def test_render_with_seeds_resumes_to_the_same_file(tmp_path):
    rows = [{"id": "q1", "query": "red ball", "prompts": ["a", "abcdef"]},
            {"id": "q2", "query": "blue", "prompts": ["abc", "ab"]}]  # fmt: skip
    whole = render_and_score(rows, SeedBackend(), tmp_path / "whole", seed=3, batch=3, seeds=2, round_=2)
    assert [v["key"] for v in whole] == [
        "q1/0",
        "q1/0#1",
        "q1/1",
        "q1/1#1",
        "q2/0",
        "q2/0#1",
        "q2/1",
        "q2/1#1",
    ]
    render_and_score(
        rows[:1], SeedBackend(), tmp_path / "cut", seed=3, batch=3, seeds=2, round_=2
    )  # killed here
    second = SeedBackend()
    render_and_score(rows, second, tmp_path / "cut", seed=3, batch=3, seeds=2, round_=2)
    assert second.rendered == ["abcdef", "abc", "abc", "ab", "ab"]  # only the unfinished chunks, each whole
    for name in ("scores.jsonl", "checklists.jsonl"):
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "cut" / name).read_bytes()
    assert not (tmp_path / "whole" / "videos" / "q1_0#1.gif").exists()  # GIFs for seed 0 only


def test_changed_share_and_loss_weights():
    from vpolib.training_log import loss_weights

    assert preference.changed_share({"a": "x", "b": "y", "c": "z"}, {"a": "x ", "b": "w", "d": "v"}) == 0.5
    assert loss_weights({"beta": 0.1}) == {"sigmoid": 1.0}
    assert loss_weights({"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 0.5]}) == {
        "sigmoid": 1.0,
        "sft": 0.5,
    }
    assert math.isclose(sum(loss_weights({"loss_type": "sigmoid"}).values()), 1.0)


def test_dev_split_is_the_dpo_pools_shapes_queries_that_04_does_not_render():
    pool = [{"id": f"s{i}", "query": f"q{i}", "source": "shapes"} for i in range(5)] + [
        {"id": "r", "query": "x", "source": "vpo"}
    ]
    fb = SimpleNamespace(
        queries="shapes", n_queries=2, n_text_queries=1, text_feedback=True, harmful_text_queries=None
    )
    assert [r["id"] for r in preference.dev_queries(pool, fb)] == ["s2", "s3", "s4"]


def test_real_dev_split_avoids_04s_queries_takes_a_fifth_harmful_from_the_pools_end():
    harm = {"flags": ["harmful"]}
    pool = [{"id": "s0", "query": "q", "source": "shapes"}] + [
        {"id": f"r{i}", "query": f"q{i}", "source": "dpo", **(harm if i % 3 == 0 else {})} for i in range(30)
    ]
    fb = SimpleNamespace(
        queries="shapes", n_queries=1, n_text_queries=4, text_feedback=True, harmful_text_queries=None
    )
    used = {r["id"] for r in preference.feedback.feedback_queries(pool, fb)[1]}
    assert used == {"r0", "r3", "r1", "r2"}  # 04's text-only queries: two harmful first, then pool order
    dev = preference.dev_text_queries(pool, fb, 10)
    # 2 harmful (a fifth of 10) from the end: r27, r24; then the last 8 others: r29 r28 r26 r25 r23 r22 r20 r19
    assert [r["id"] for r in dev] == ["r19", "r20", "r22", "r23", "r24", "r25", "r26", "r27", "r28", "r29"]
    assert not used & {r["id"] for r in dev} and preference.dev_text_queries(pool, fb, 0) == []
    # 8 harmful-flagged text queries (r0 r3 + r6 .. r21) leave the dev split as it was: its harmful come from the end
    more = SimpleNamespace(**{**vars(fb), "harmful_text_queries": 8})
    used = [r["id"] for r in preference.feedback.feedback_queries(pool, more)[1]]
    assert used == ["r0", "r3", "r1", "r2", "r6", "r9", "r12", "r15", "r18", "r21"]
    assert preference.dev_text_queries(pool, more, 10) == dev
    with pytest.raises(ValueError, match="harmful_text_queries=9 leaves 1 harmful"):
        preference.dev_text_queries(pool, SimpleNamespace(**{**vars(fb), "harmful_text_queries": 9}), 10)


def test_dev_text_scores_pass_share_and_unsafe_share_of_the_harmful():
    rec = lambda verdict, harmful, harmless: {  # noqa: E731
        "verdict": verdict, "harmful": harmful, "passed": {} if harmless is None else {"harmless": harmless},
    }  # fmt: skip
    records = [rec(True, False, True), rec(False, True, False), rec(True, True, True), rec(None, False, None)]
    assert preference.dev_text_scores(records) == {"pass": 0.5, "unsafe_harmful": 0.5, "n": 4}
    assert preference.dev_text_scores(records[:1])["unsafe_harmful"] is None


def test_round_table_rounds_the_shares_and_leaves_missing_ones_empty():
    from vpolib.views.preference import round_table

    sft = {
        "round": 0,
        "dev_reward": 0.70712,
        "dev_changed": None,
        "dev_text_pass": 2 / 3,
        "dev_text_unsafe_harmful": 0.12345,
    }
    r1 = {"round": 1, "dev_reward": 0.71, "dev_changed": 0.25, "dev_text_pass": None, "dev_text_unsafe_harmful": None,
          "train": 40, "info": {"steps": 10}, "collected": {"text": {"pairs": 12}, "video": {"pairs": 30}}}  # fmt: skip
    table = round_table([sft, r1]).set_index("round")
    assert table.loc[0, ["dev reward", "real dev pass", "real dev harmful unsafe"]].tolist() == [
        0.7071,
        0.667,
        0.123,
    ]
    assert table.loc[1, "real dev pass"] is None or math.isnan(table.loc[1, "real dev pass"])
    assert table.loc[1, ["text pairs", "video pairs", "steps"]].tolist() == [12, 30, 10]
