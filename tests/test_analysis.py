"""Metrics of notebook 06 on hand-made inputs with hand-computed expected values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from vpolib import analysis as A


def rec(i, method, passed, refusal=False, harmful=False):
    return {"id": f"q{i}", "method": method, "passed": passed, "refusal": refusal, "harmful": harmful}


OK = {"harmless": True, "aligned": True, "helpful": True}


def test_is_refusal():
    assert A.is_refusal("I'm sorry, but I can't help with that request.")
    assert A.is_refusal("I cannot create violent content.")
    assert A.is_refusal("   ")
    assert A.is_refusal(None)
    assert not A.is_refusal("A red circle moves to the right across a black background.")
    assert not A.is_refusal("A sorry-looking dog sits in the rain.")


def test_text_outcome_priority():
    assert A.text_outcome(rec(0, "m", OK)) == "aligned"
    assert A.text_outcome(rec(0, "m", {**OK, "helpful": False})) == "imprecise"
    # unsafe wins over imprecise; refusal wins over everything
    assert A.text_outcome(rec(0, "m", {"harmless": False, "aligned": False, "helpful": True})) == "unsafe"
    assert A.text_outcome(rec(0, "m", {**OK, "harmless": False}, refusal=True)) == "refusal"
    assert A.text_outcome(rec(0, "m", {"safe": False, "aligned": True}), safety="safe") == "unsafe"


def test_text_table_percentages_and_subset():
    records = [
        rec(0, "vpo", OK),
        rec(1, "vpo", OK),
        rec(2, "vpo", OK, harmful=True),
        rec(3, "vpo", {**OK, "aligned": False}),
        rec(0, "raw", {**OK, "harmless": False}, harmful=False),
        rec(1, "raw", OK),
        rec(2, "raw", OK, refusal=True, harmful=True),
        rec(3, "raw", {**OK, "helpful": False}),
    ]
    frame = A.text_frame(records)
    table = A.text_table(frame, n_boot=200).set_index("method")
    assert table.loc["vpo", "aligned"] == 75.0 and table.loc["vpo", "imprecise"] == 25.0
    assert table.loc["raw", ["aligned", "unsafe", "imprecise", "refusal"]].tolist() == [
        25.0,
        25.0,
        25.0,
        25.0,
    ]
    # the four outcomes partition the set
    assert np.allclose(table[list(A.OUTCOMES)].sum(axis=1), 100.0)
    harmful = A.text_table(frame[frame.harmful], n_boot=200).set_index("method")
    assert harmful.loc["raw", "refusal"] == 100.0 and harmful.loc["vpo", "aligned"] == 100.0
    # graded score: a refusal is 0, two of three principles met is 2/3
    scores = frame.set_index(["method", "id"])["text_score"]
    assert scores[("raw", "q2")] == 0.0 and scores[("raw", "q3")] == pytest.approx(2 / 3)


def test_principle_table():
    records = [
        rec(0, "vpo", {**OK, "aligned": False}),
        rec(1, "vpo", OK),
        rec(2, "vpo", {**OK, "aligned": False, "helpful": False}),
        rec(3, "vpo", OK),
    ]
    table = A.principle_table(A.text_frame(records), n_boot=100).set_index("principle")
    assert table.loc["aligned", "fail_pct"] == 50.0
    assert table.loc["helpful", "fail_pct"] == 25.0
    assert table.loc["harmless", "fail_pct"] == 0.0
    assert (table.loc["harmless", ["lo", "hi"]] == 0.0).all()  # no failures -> CI collapses to 0


def test_bootstrap_ci_constant_and_single_value():
    assert A.bootstrap_ci([0.7] * 20, n_boot=100) == pytest.approx((0.7, 0.7))
    assert A.bootstrap_ci([3.0], n_boot=50) == pytest.approx((3.0, 3.0))
    lo, hi = A.bootstrap_ci([], n_boot=50)
    assert math.isnan(lo) and math.isnan(hi)


def test_bootstrap_ci_matches_normal_approximation():
    # 100 coin flips, 50 heads: normal 95% CI of the mean is 0.5 +- 1.96 * sqrt(0.25 / 100) = [0.402, 0.598]
    values = [0, 1] * 50
    lo, hi = A.bootstrap_ci(values, n_boot=4000, seed=1)
    assert lo == pytest.approx(0.402, abs=0.02) and hi == pytest.approx(0.598, abs=0.02)
    assert A.bootstrap_ci(values, n_boot=500, seed=3) == A.bootstrap_ci(values, n_boot=500, seed=3)


def test_mean_ci_scale():
    ci = A.mean_ci([1, 1, 0, 0], n_boot=100, scale=100)
    assert ci["mean"] == 50.0 and ci["n"] == 4 and 0.0 <= ci["lo"] <= 50.0 <= ci["hi"] <= 100.0


def test_paired_win_rates():
    frame = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"] * 2 + ["e"],
            "method": ["vpo"] * 4 + ["raw"] * 4 + ["vpo"],  # "e" has no raw partner: not counted
            "reward": [1.0, 0.0, 0.5, 1.0, 0.0, 0.0, 1.0, 1.0, 0.9],
        }
    )
    table = A.paired_win_rates(frame, "reward", "vpo", n_boot=200).set_index("baseline")
    row = table.loc["raw"]
    # a: win, b: tie, c: loss, d: tie -> (1 + 0.5 + 0 + 0.5) / 4
    assert (row["n"], row["wins"], row["ties"], row["losses"]) == (4, 1, 2, 1)
    assert row["win_rate"] == 0.5
    assert A.paired_win_rates(frame, "reward", "absent").empty


def test_video_and_dimension_tables():
    records = [
        {
            "id": "s1",
            "method": "vpo",
            "score": 3.0,
            "max_score": 4.0,
            "answers": {"c": True, "m": True, "q": False},
            "kinds": {"c": "colour", "m": "motion", "q": "quality"},
        },
        {
            "id": "s2",
            "method": "vpo",
            "score": 1.0,
            "max_score": 4.0,
            "answers": {"c": False, "m": True},
            "kinds": {"c": "colour", "m": "motion"},
        },
    ]
    table = A.video_table(A.video_frame(records), n_boot=100).set_index("method")
    assert table.loc["vpo", "reward"] == pytest.approx((0.75 + 0.25) / 2)
    assert table.loc["vpo", "pass_rate"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    dims = A.dimension_table(A.question_frame(records), n_boot=100).set_index("kind")
    assert dims.loc["colour", "pass_rate"] == 0.5 and dims.loc["motion", "pass_rate"] == 1.0
    assert dims.loc["quality", "n"] == 1


def test_stage_timings_total():
    manifest = {
        "stages": {
            "01_data": {"status": "ok", "seconds": 10.5},
            "02_refine": {"status": "ok", "seconds": 4.5},
            "06_evaluate": {"started": "now"},
        }
    }
    table = A.stage_timings(manifest)
    assert table["stage"].tolist()[-1].startswith("total")
    assert table["seconds"].iloc[-1] == 15.0
    assert table.set_index("stage").loc["06_evaluate", "status"] == "running"


def test_answers_as_bools_or_yes_no_strings():
    from vpolib.checklist import answer_value

    assert [answer_value(a) for a in (True, False, "yes", "No", None, "maybe")] == [
        1.0,
        0.0,
        1.0,
        0.0,
        None,
        None,
    ]
    assert [A.answer_label(a) for a in (True, "no", None)] == ["yes", "NO", "?"]
    records = [
        {
            "id": "s1",
            "method": "vpo",
            "score": 1.0,
            "max_score": 2.0,
            "answers": {"a": "yes", "b": "no", "c": None},
            "kinds": {"a": "colour", "b": "motion"},
        }
    ]
    assert A.video_frame(records)["pass_rate"].iloc[0] == 0.5  # the missing answer is not counted
    assert A.question_frame(records)["question"].tolist() == ["a", "b"]


def test_overall_verdict_without_principles():
    # an LLM judge: one overall verdict, no per-principle ones
    assert A.text_outcome({"passed": {}, "verdict": False}) == "imprecise"
    assert A.text_outcome({"passed": {}, "verdict": True}) == "aligned"
    frame = A.text_frame(
        [
            {"id": "a", "method": "m", "passed": {}, "verdict": True},
            {"id": "b", "method": "m", "passed": {}, "verdict": False},
        ]
    )
    assert frame["text_score"].tolist() == [1.0, 0.0]


def test_pass_rate_per_question_id():
    records = [
        {
            "id": f"s{i}",
            "method": "vpo",
            "score": 0,
            "max_score": 1,
            "answers": {"c": i < 3, "m": True},
            "kinds": {"c": "colour", "m": "motion"},
        }
        for i in range(4)
    ]
    table = A.dimension_table(A.question_frame(records), n_boot=50, by="question").set_index("question")
    assert (
        table.loc["c", "pass_rate"] == 0.75
        and table.loc["m", "pass_rate"] == 1.0
        and table.loc["c", "n"] == 4
    )


def test_empty_inputs_give_empty_tables():
    frame = A.text_frame([])
    assert A.text_table(frame).empty and A.principle_table(frame).empty
    assert A.paired_win_rates(frame, "text_score", "vpo").empty


# ---- stage 06's tables in one call ------------------------------------------------------------------------


def test_records_and_per_model():
    frame = pd.DataFrame({"method": ["vpo", "raw"], "reward": [0.75, 0.25]})
    assert A.records(frame) == [{"method": "vpo", "reward": 0.75}, {"method": "raw", "reward": 0.25}]
    assert A.records(pd.DataFrame()) == [] and A.records(None) == []
    frames = {"A": frame, "B": frame.assign(reward=[1.0, 0.0]), "C": frame.iloc[:0]}  # C is empty: left out
    means = A.per_model(
        lambda f, scale: f.groupby("method", sort=False)["reward"].mean().mul(scale).reset_index(), frames, 2
    )
    assert list(means["model"]) == ["A", "A", "B", "B"] and means["reward"].tolist() == [1.5, 0.5, 2.0, 0.0]
    assert A.per_model(lambda f: f, {"A": frame.iloc[:0]}).empty


def test_text_results_by_hand():
    judged = [
        rec(1, "vpo", OK),
        rec(1, "raw", {**OK, "helpful": False}),  # vpo wins q1 (3/3 against 2/3)
        rec(2, "vpo", {**OK, "harmless": False}, harmful=True),
        rec(2, "raw", {**OK, "harmless": False}, harmful=True),  # tie on q2 (2/3 each)
        rec(1, "sft", OK),
        rec(2, "sft", OK, harmful=True),
    ]
    text = A.text_results(A.text_frame(judged), "vpo", n_boot=100)
    table = text["all"].set_index("method")
    assert table.loc["vpo", "aligned"] == 50.0 and table.loc["vpo", "unsafe"] == 50.0
    assert table.loc["raw", "imprecise"] == 50.0 and table.loc["sft", "aligned"] == 100.0
    assert text["harmful"].set_index("method").loc["raw", "unsafe"] == 100.0  # only q2 is harmful
    wins = text["win_rates"].set_index("baseline")
    assert wins.loc["raw", "win_rate"] == 0.75  # (1 + 0.5) / 2
    assert wins.loc["sft", "win_rate"] == 0.25  # tie on q1, loss on q2: (0.5 + 0) / 2
    sft = text["sft_over_raw"].iloc[0]  # sft 3/3 on both, raw 2/3 on both: two wins
    assert (sft["target"], sft["baseline"], sft["win_rate"]) == ("sft", "raw", 1.0)
    fails = text["principles_harmful"].set_index(["method", "principle"])["fail_pct"]
    assert fails[("vpo", "harmless")] == 100.0 and fails[("sft", "harmless")] == 0.0


def test_video_results_by_hand_and_empty():
    def vrec(i, method, score, answers):
        kinds = {q: q.split("_")[0] for q in answers}
        return {
            "id": f"s{i}",
            "method": method,
            "score": score,
            "max_score": 4.0,
            "answers": answers,
            "kinds": kinds,
        }

    records = [
        vrec(1, "vpo", 4.0, {"colour_1": True, "motion_1": True}),
        vrec(1, "raw", 2.0, {"colour_1": True, "motion_1": False}),
        vrec(2, "vpo", 1.0, {"colour_1": False, "motion_1": True}),
        vrec(2, "raw", 1.0, {"colour_1": False, "motion_1": True}),
    ]
    video = A.video_results(records, "vpo", n_boot=100)
    assert video["overall"].set_index("method")["reward"].to_dict() == {"vpo": 0.625, "raw": 0.375}
    dims = video["dimensions"].set_index(["method", "kind"])["pass_rate"]
    assert dims[("raw", "motion")] == 0.5 and dims[("vpo", "colour")] == 0.5
    assert video["win_rates"].iloc[0]["win_rate"] == 0.75  # win on s1, tie on s2
    assert len(video["questions"]) == 4 and video["sft_over_raw"].empty  # no sft videos
    empty = A.video_results([], "vpo")
    assert list(empty["frame"].columns) == ["id", "method", "reward", "pass_rate", "seeds"]
    assert all(empty[k].empty for k in ("overall", "dimensions", "questions", "win_rates", "sft_over_raw"))


def test_failure_causes_and_their_table():
    def r(i, method, reasons, prompt="a prompt", source="sft", query="a dog in the park"):
        return {**rec(i, method, OK), "reasons": reasons, "prompt": prompt, "source": source, "query": query}

    records = [
        r(0, "raw", {"helpful": ["too_short"]}),
        r(1, "raw", {}),
        r(0, "sft", {"aligned": ["missing_content", "low_similarity"], "helpful": ["repetitive"]}),
        r(
            1, "sft", {}, prompt="A small red shape moves to the left."
        ),  # a ShapesWorld answer to a real query
        r(2, "sft", {}, prompt="A red shape.", source="shapes", query="red shape"),  # asked for: no cause
    ]
    assert A.failure_causes(records[2]) == ["content word dropped", "meaning drifted", "repetitive"]
    assert A.failure_causes(records[3]) == ["wrong target world"] and A.failure_causes(records[4]) == []
    bank = r(3, "sft", {}, prompt="A dog runs. Soft light shows the shapes, colours and textures.")
    # "shapes" in a real prompt's lighting sentence is no ShapesWorld caption
    assert A.failure_causes(bank) == []
    table = A.cause_table(A.text_frame(records)).set_index(["method", "cause"])
    assert table.loc[("raw", "too short"), "n"] == 1 and table.loc[("raw", "too short"), "pct"] == 50.0
    assert table.loc[("sft", "wrong target world"), "n"] == 1
    assert table.loc[("sft", "repetitive"), "pct"] == pytest.approx(100 / 3)
    assert len(table) == 5  # raw: 1 cause; sft: 3 of query 0 + 1 of query 1


def test_paired_difference_of_aligned_shares():
    # sft passes queries 0-2, raw only query 0: difference +2/3, every resample >= 0 (never a loss)
    records = [rec(i, "sft", OK) for i in range(3)] + [rec(0, "raw", OK)]
    records += [rec(i, "raw", {**OK, "helpful": False}) for i in (1, 2)]
    [row] = A.paired_difference(A.text_frame(records), "aligned", "sft", "raw", n_boot=200).to_dict("records")
    assert row["n"] == 3 and row["diff"] == pytest.approx(2 / 3) and 0.0 <= row["lo"] <= row["hi"] <= 1.0
    assert A.paired_difference(A.text_frame(records), "aligned", "vpo", "raw").empty  # no vpo prompts


def test_video_results_average_the_seeds_before_the_paired_comparison():
    """Two seeds per (query, method): the reward per query is the mean over seeds, and the win rate compares
    those means (by hand: s1 vpo 0.5 vs raw 0.5 tie; s2 vpo 0.625 vs raw 0.25 win; s3 vpo 0 vs raw 0.25 loss)."""

    def vrec(i, method, seed, score, colour):
        return {"id": f"s{i}", "method": method, "seed": seed, "score": score, "max_score": 4.0,
                "answers": {"c": colour}, "kinds": {"c": "colour"}}  # fmt: skip

    records = [
        vrec(1, "vpo", 0, 4.0, True), vrec(1, "vpo", 1, 0.0, False),  # mean 0.5 (seed 0 alone: a win)
        vrec(1, "raw", 0, 2.0, True), vrec(1, "raw", 1, 2.0, False),  # mean 0.5
        vrec(2, "vpo", 0, 2.0, True), vrec(2, "vpo", 1, 3.0, True),  # mean 0.625
        vrec(2, "raw", 0, 1.0, False), vrec(2, "raw", 1, 1.0, False),  # mean 0.25
        vrec(3, "vpo", 0, 0.0, False), vrec(3, "vpo", 1, 0.0, False),  # mean 0
        vrec(3, "raw", 0, 0.0, False), vrec(3, "raw", 1, 2.0, True),  # mean 0.25
    ]  # fmt: skip
    frame = A.video_frame(records)
    assert len(frame) == 6 and set(frame["seeds"]) == {2}
    by = frame.set_index(["id", "method"])
    assert by.loc[("s1", "vpo"), "reward"] == 0.5 and by.loc[("s2", "vpo"), "reward"] == 0.625
    assert by.loc[("s1", "raw"), "pass_rate"] == 0.5  # one of its two videos passed
    video = A.video_results(records, "vpo", n_boot=100)
    reward = video["overall"].set_index("method")
    assert reward.loc["vpo", "reward"] == pytest.approx((0.5 + 0.625 + 0) / 3) and reward.loc["vpo", "n"] == 3
    row = video["win_rates"].set_index("baseline").loc["raw"]
    assert (row["n"], row["wins"], row["ties"], row["losses"], row["win_rate"]) == (3, 1, 1, 1, 0.5)
    dims = video["dimensions"].set_index(["method", "kind"])  # every seed's answers pooled
    assert dims.loc[("vpo", "colour"), "n"] == 6 and dims.loc[("vpo", "colour"), "pass_rate"] == 0.5


def test_changed_vs_sft():
    prompts = {
        "sft": {"a": "red ball", "b": "blue box", "c": "green"},
        "vpo": {"a": "red  ball ", "b": "a blue box", "c": "green"},  # whitespace aside, only b changed
        "vpo-paper": {"a": "x", "b": "y"},
        "raw": {"a": "red"},
    }
    table = A.changed_vs(prompts, ["a", "b", "c", "z"], "sft", ["sft", "vpo", "vpo-paper"]).set_index(
        "method"
    )
    assert list(table.index) == ["vpo", "vpo-paper"]  # the base is left out
    assert (table.loc["vpo", "n"], table.loc["vpo", "changed"]) == (3, 1)
    assert table.loc["vpo", "share"] == pytest.approx(1 / 3)
    assert (table.loc["vpo-paper", "n"], table.loc["vpo-paper", "share"]) == (2, 1.0)
    assert A.changed_vs(prompts, ["a"], "sft").set_index("method").loc["raw", "changed"] == 1  # default: all
    assert A.changed_vs({"vpo": {"a": "x"}}, ["a"], "sft").empty


def test_sampled_results_mean_over_samples_and_seeds():
    """Per query, the mean over samples and seeds (by hand), beside the greedy frame; win rates per decoding."""

    def srec(i, method, sample, seed, score):
        return {"id": f"s{i}", "method": f"{method}@{sample}", "seed": seed, "score": score, "max_score": 4.0,
                "answers": {"c": score > 1}, "kinds": {"c": "colour"}}  # fmt: skip

    records = [
        # s1: vpo samples (4, 2) and (2, 0) -> mean 8/16 = 0.5; sft (0, 0), (2, 2) -> 0.25: a vpo win
        srec(1, "vpo", 0, 0, 4.0), srec(1, "vpo", 0, 1, 2.0), srec(1, "vpo", 1, 0, 2.0), srec(1, "vpo", 1, 1, 0.0),
        srec(1, "sft", 0, 0, 0.0), srec(1, "sft", 0, 1, 0.0), srec(1, "sft", 1, 0, 2.0), srec(1, "sft", 1, 1, 2.0),
        # s2: vpo 1 everywhere -> 0.25; sft 1, 1, 1, 1 -> 0.25: a tie
        *[srec(2, m, j, s, 1.0) for m in ("vpo", "sft") for j in (0, 1) for s in (0, 1)],
    ]  # fmt: skip
    greedy = pd.DataFrame(
        {"id": ["s1", "s1", "s2", "s2", "s1"], "method": ["vpo", "sft", "vpo", "sft", "raw"],
         "reward": [0.5, 0.5, 0.25, 0.25, 0.0], "pass_rate": [1.0, 1.0, 0.0, 0.0, 0.0]}
    )  # fmt: skip
    out = A.sampled_results(records, greedy, "vpo", "sft", n_boot=100)
    frame = out["frame"].set_index(["id", "method"])
    assert frame.loc[("s1", "vpo"), "reward"] == 0.5 and frame.loc[("s1", "sft"), "reward"] == 0.25
    assert set(frame["samples"]) == {2}
    overall = out["overall"].set_index(["method", "decoding"])
    assert set(overall.index) == {(m, d) for m in ("vpo", "sft") for d in ("greedy", "sampled")}  # no raw
    assert overall.loc[("vpo", "sampled"), "reward"] == pytest.approx((0.5 + 0.25) / 2)
    assert overall.loc[("sft", "sampled"), "reward"] == pytest.approx((0.25 + 0.25) / 2)
    assert overall.loc[("sft", "greedy"), "reward"] == pytest.approx((0.5 + 0.25) / 2)
    wins = out["win_rates"].set_index("decoding")
    assert wins.loc["greedy", "win_rate"] == 0.5 and wins.loc["greedy", "ties"] == 2  # greedy: two ties
    assert wins.loc["sampled", "win_rate"] == 0.75 and wins.loc["sampled", "baseline"] == "sft"  # win + tie
    empty = A.sampled_results([], greedy, "vpo", "sft", n_boot=10)
    assert empty["overall"].empty and empty["win_rates"].empty


def test_paired_gain_pairs_the_ids_both_models_have():
    # ids x, y shared (z only in b): differences 0 and 2 -> mean 1, one id differs
    gain = A.paired_gain({"x": 0.5, "y": 0.75}, {"x": 0.5, "y": -1.25, "z": 9.0})
    assert (gain["diff"], gain["n"], gain["n_differ"]) == (1.0, 2, 1)
    assert 0.0 <= gain["lo"] <= gain["diff"] <= gain["hi"] <= 2.0
    same = A.paired_gain({"x": 0.3}, {"x": 0.3})
    assert same == {"diff": 0.0, "lo": 0.0, "hi": 0.0, "n": 1, "n_differ": 0}
