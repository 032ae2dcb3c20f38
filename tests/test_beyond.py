"""Issue 12 ("Beyond the paper"): model B, the test-time loop and the reward-hacking diagnostics, on hand-made
inputs whose answers can be worked out by hand."""

import math
import random

import numpy as np
import pandas as pd
import pytest

from vpolib import checkpoints, diagnostics, testtime, transfer
from vpolib.config import load_config
from vpolib.shapesworld.reward import checklist
from vpolib.views import beyond

# ---- diagnostics ---------------------------------------------------------------------------------------------


def test_words_and_spearman():
    assert diagnostics.n_words("a  red\tball ") == 3 and diagnostics.n_words(None) == 0
    assert diagnostics.spearman(np.array([1, 2, 3]), np.array([10, 20, 30])) == pytest.approx(1.0)
    assert diagnostics.spearman(np.array([1, 2, 3]), np.array([3, 2, 1])) == pytest.approx(-1.0)
    assert math.isnan(diagnostics.spearman(np.array([1, 1, 1]), np.array([1, 2, 3])))


def test_length_reward_by_hand():
    frame = pd.DataFrame({"method": ["m"] * 4, "words": [5, 10, 15, 20], "reward": [0.1, 0.2, 0.3, 0.4]})
    row = diagnostics.length_reward(frame, n_boot=200).iloc[0]
    assert row["n"] == 4 and row["words"] == 12.5
    assert row["spearman"] == pytest.approx(1.0)
    assert row["slope_per_10_words"] == pytest.approx(0.2)  # 0.02 per word
    assert row["reward_short_half"] == pytest.approx(0.15) and row["reward_long_half"] == pytest.approx(0.35)
    assert row["lo"] <= row["spearman"] <= row["hi"]


def _q(qid, question, kind, method, passed):
    return {"id": qid, "question": question, "kind": kind, "method": method, "passed": passed}


def test_dimension_delta_flags_the_dimension_that_got_worse():
    rows = [
        _q("a", "o1_colour", "colour", "sft", 1.0),
        _q("a", "o1_colour", "colour", "vpo", 1.0),
        _q("b", "o1_colour", "colour", "sft", 0.0),
        _q("b", "o1_colour", "colour", "vpo", 1.0),
        _q("a", "o1_motion", "motion", "sft", 1.0),
        _q("a", "o1_motion", "motion", "vpo", 0.0),
        _q("b", "o1_motion", "motion", "sft", 1.0),
        _q("b", "o1_motion", "motion", "vpo", 0.0),
        _q("b", "o1_shape", "shape", "vpo", 1.0),  # no SFT answer: not paired, left out
    ]
    table = diagnostics.dimension_delta(pd.DataFrame(rows), "vpo", "sft", n_boot=200).set_index("kind")
    assert list(table.index) == ["colour", "motion"]
    assert table.loc["colour", "delta"] == pytest.approx(0.5)  # per query 0 and +1
    assert table.loc["motion", "delta"] == pytest.approx(-1.0)
    assert table.loc["motion", "verdict"] == "worse" and table.loc["motion", "hi"] == pytest.approx(-1.0)
    assert table.loc["colour", "base"] == pytest.approx(0.5) and table.loc["colour", "target"] == 1.0


def test_length_drift_by_hand():
    prompts = {
        "sft": {"a": "one two", "b": "one two three four", "c": "x"},
        "vpo": {"a": "one two three four", "b": "one two three four five six"},
        "raw": {"a": "q"},
    }
    table = diagnostics.length_drift(prompts, "sft", groups={"a": "shapes", "b": "dpo"}, n_boot=200)
    all_row = table[table["group"] == "all"].iloc[0]
    assert list(table["target"].unique()) == ["vpo"]  # targets default to vpo*
    assert all_row["n"] == 2 and all_row["delta"] == 2.0 and (all_row["lo"], all_row["hi"]) == (2.0, 2.0)
    assert all_row["ratio"] == pytest.approx(5 / 3) and all_row["verdict"] == "longer"
    assert set(table["group"]) == {"all", "dpo", "shapes"}


def test_probe_prompts_pick_another_scene():
    queries = [
        {"id": "q1", "query": "red ball", "caption": "c1"},
        {"id": "q2", "query": "blue box", "caption": "c2"},
        {"id": "q3", "query": "red dot", "caption": "c1"},  # same scene caption as q1
        {"id": "q4", "query": "no caption"},
    ]
    p = diagnostics.probe_prompts(queries)
    assert p["right"] == {"q1": "c1", "q2": "c2", "q3": "c1"}
    assert p["irrelevant"] == {"q1": "c2", "q2": "c1", "q3": "c2"}  # never its own caption
    assert p["empty"] == {"q1": "", "q2": "", "q3": ""}


def test_probe_table_gap_and_ratio():
    recs = [
        {"id": "a", "kind": "right", "reward": 1.0},
        {"id": "b", "kind": "right", "reward": 0.8},
        {"id": "a", "kind": "irrelevant", "reward": 0.2},
        {"id": "b", "kind": "irrelevant", "reward": 0.4},
        {"id": "a", "kind": "empty", "reward": 0.0},
        {"id": "b", "kind": "empty", "reward": 0.0},
    ]
    t = diagnostics.probe_table(recs, n_boot=200).set_index("row")
    assert t.loc["right", "value"] == pytest.approx(0.9) and t.loc["empty", "value"] == 0.0
    assert t.loc["gap right - irrelevant", "value"] == pytest.approx(0.6)
    assert t.loc["ratio irrelevant / right", "value"] == pytest.approx(0.6 / 1.8)
    assert set(t["model"]) == {"A"}


def test_run_probe_with_a_fake_backend():
    class Fake:
        def render(self, prompts, seeds):
            return [np.full((1,), len(p)) for p in prompts]

        def checklist(self, query):
            return [query]

        def score(self, questions, video):  # reward = 1 for a prompt of 2 characters, else 0
            return {"score": float(video[0] == 2), "max_score": 1.0}

    queries = [{"id": "a", "query": "x", "caption": "c1"}, {"id": "b", "query": "y", "caption": "c2"}]
    recs = diagnostics.run_probe(Fake(), queries, seed_of=lambda i: 0, batch=2)
    assert len(recs) == 6 and all(r["reward"] == 1.0 for r in recs if r["kind"] != "empty")
    assert all(r["reward"] == 0.0 for r in recs if r["kind"] == "empty")


# ---- test-time loop ------------------------------------------------------------------------------------------


def test_hints_name_what_failed():
    qs = {q.id: q for q in checklist("crimson ball going right on black -neg blue")}
    assert testtime.hint(qs["o1_colour"]) == "a red circle"
    assert testtime.hint(qs["o1_motion"]) == "the red circle moves from the left to the right"
    assert testtime.hint(qs["background"]) == "a black background"
    assert testtime.hint(qs["neg_blue"]) == "no blue"
    assert testtime.hint(qs["q_stable"]) == "no flicker"
    text = testtime.feedback_query("crimson ball", [qs["q_stable"], qs["o1_colour"], qs["o1_shape"]])
    assert text == "crimson ball, a red circle, the red object is a circle, no flicker"  # content first
    asked = testtime.feedback_query("crimson ball", [qs["o1_colour"]], style="questions")
    assert asked == "crimson ball, Is there a red object?"
    assert testtime.feedback_query("crimson ball", [qs["o1_colour"]], style="none") == "crimson ball"
    with pytest.raises(ValueError):
        testtime.feedback_query("x", [], style="shout")


def _loop(tmp_path, calls):
    queries = [{"id": "q1", "query": "red ball"}, {"id": "q2", "query": "blue box"}]
    first = {"q1": "p1", "q2": "p2"}
    table = {"p1": 1.0, "p2": 0.5, "q2-r2": 0.25, "q2-r3": 0.75}  # prompt -> reward

    def rewrite(inputs, ids, rnd):
        calls["rewrite"].append((list(inputs), rnd))
        return [f"{i}-r{rnd}" for i in ids]

    def score(prompts, ids):
        calls["render"] += len(prompts)
        r = [table[p] for p in prompts]
        return [
            {"answers": {"o1_colour": "yes" if x >= 0.5 else "no"}, "score": x, "max_score": 1.0} for x in r
        ]

    def fresh(prompts, ids):
        return [{"answers": {}, "score": table[p] / 2, "max_score": 1.0} for p in prompts]

    return testtime.run_loop(
        "vpo", queries, first, rewrite, score, fresh, checklist, 3, tmp_path / "tt.jsonl"
    )


def test_run_loop_keeps_the_best_and_stops_a_perfect_query(tmp_path):
    calls = {"rewrite": [], "render": 0}
    recs = {(r["id"], r["round"]): r for r in _loop(tmp_path, calls)}
    assert calls["render"] == 4  # q1 once (perfect: stopped), q2 three times
    assert recs[("q1", 2)]["rendered"] is False and recs[("q1", 3)]["videos"] == 1
    assert recs[("q2", 2)]["reward"] == 0.25 and recs[("q2", 2)]["best_reward"] == 0.5  # worse: best kept
    assert recs[("q2", 2)]["best_prompt"] == "p2" and recs[("q2", 3)]["best_prompt"] == "q2-r3"
    assert recs[("q2", 3)]["videos"] == 3 and recs[("q2", 3)]["fresh_reward"] == 0.375
    # the rewrite sees the query plus what the best video so far (p2) did not pass: its colour item passed, its
    # shape and quality items have no "yes" (the fake scorer answers only the colour)
    inputs, rnd = calls["rewrite"][0]
    assert rnd == 2 and inputs == [
        "blue box, the blue object is a square, no flicker, each object whole and sharp"
    ]
    t = testtime.rounds_table(list(recs.values()), n_boot=200).set_index("round")
    assert t.loc[1, "best_reward"] == 0.75 and t.loc[3, "best_reward"] == pytest.approx(0.875)
    assert t.loc[3, "videos"] == 2.0 and t.loc[1, "stopped"] == 0.5
    g = testtime.gain_table(list(recs.values()), n_boot=200).set_index("metric")
    assert g.loc["best_reward", "gain"] == pytest.approx(0.125)  # (0 + 0.25) / 2


def test_run_loop_resumes_without_rendering_again(tmp_path):
    calls = {"rewrite": [], "render": 0}
    first = _loop(tmp_path, calls)
    calls = {"rewrite": [], "render": 0}
    again = _loop(tmp_path, calls)
    assert calls == {"rewrite": [], "render": 0}
    assert sorted(r["key"] for r in first) == sorted(r["key"] for r in again)


def test_optimizer_dirs(tmp_path):
    assert checkpoints.optimizer_dir(tmp_path, "sft") == tmp_path / "03_sft" / "model"
    assert checkpoints.optimizer_dir(tmp_path, "vpo") == tmp_path / "05_dpo" / "model"
    assert checkpoints.optimizer_dir(tmp_path, "vpo-text") == tmp_path / "05_dpo" / "model_text"
    with pytest.raises(ValueError):
        checkpoints.optimizer_dir(tmp_path, "raw")


# ---- transfer ------------------------------------------------------------------------------------------------


def test_paired_gain_and_table():
    frame = pd.DataFrame(
        {
            "id": ["a", "b", "a", "b", "c"],
            "method": ["vpo", "vpo", "sft", "sft", "sft"],
            "reward": [0.5, 1.0, 0.25, 0.5, 0.0],
        }
    )
    g = transfer.paired_gain(frame, "vpo", "sft", n_boot=200)
    assert g["mean"] == pytest.approx(0.375) and g["n"] == 2  # c has no vpo video
    assert transfer.paired_gain(frame, "vpo", "raw")["n"] == 0
    t = transfer.gains_table({"A": frame, "B": frame.assign(reward=frame["reward"] / 2)}, n_boot=200)
    assert list(t["model"]) == ["A", "B"] and t["gain"].tolist() == pytest.approx([0.375, 0.1875])


# ---- model B -------------------------------------------------------------------------------------------------


def test_caption_b_uses_synonyms_from_the_world():
    from vpolib.shapesworld.model_b import caption_b
    from vpolib.shapesworld.world import caption, sample_scene

    scene = sample_scene(random.Random(3))
    assert caption_b(scene, random.Random(0), synonym_prob=0.0) == caption(scene)
    texts = {caption_b(scene, random.Random(s), synonym_prob=1.0) for s in range(20)}
    assert len(texts) > 1 and all(len(t.split()) == len(caption(scene).split()) for t in texts)
    assert caption_b(scene, random.Random(5)) == caption_b(scene, random.Random(5))  # deterministic


def test_model_b_pipeline_round_trip(tmp_path):
    import torch

    from vpolib.shapesworld import generate, load_pipeline
    from vpolib.shapesworld.model_b import ShapesWorldDiTPipeline, build_dit_components
    from vpolib.shapesworld.pipeline import build_tokenizer

    torch.manual_seed(0)
    parts = build_dit_components(build_tokenizer(["a red circle", "a blue square"]), 16, 8, layers=1)
    parts.pop("noise_scheduler")
    pipe = ShapesWorldDiTPipeline(**parts)
    pipe.set_progress_bar_config(disable=True)
    videos = generate(pipe, ["a red circle", "a crimson orb"], [1, 2], steps=2)
    assert videos.shape == (2, 8, 16, 16, 3) and videos.dtype == np.uint8
    pipe.save_pretrained(tmp_path / "b")
    loaded = load_pipeline(tmp_path / "b")
    assert isinstance(loaded, ShapesWorldDiTPipeline)
    assert np.array_equal(generate(loaded, ["a red circle", "a crimson orb"], [1, 2], steps=2), videos)


def test_committed_model_b_is_small_and_loads():
    from vpolib.paths import resolve
    from vpolib.shapesworld import load_pipeline
    from vpolib.shapesworld.model_b import MODEL_B_DIR

    path = resolve(MODEL_B_DIR)
    assert sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) <= 10 * 2**20
    pipe = load_pipeline(path)
    assert type(pipe.denoiser).__name__ == "PixArtTransformer2DModel"
    assert (
        pipe.tokenizer.convert_tokens_to_ids("crimson") != pipe.tokenizer.unk_token_id
    )  # B's own vocabulary


# ---- config --------------------------------------------------------------------------------------------------


def test_beyond_profiles():
    cpu, ext, smoke = (load_config(p).beyond for p in ("cpu", "extended", "smoke"))
    assert cpu.testtime_rounds == 0 and not cpu.model_b and cpu.probe and cpu.diagnostics  # B: +4-9 min
    assert ext.model_b and smoke.model_b  # the smoke chain exercises model B
    assert ext.testtime_rounds > 1 and ext.testtime_queries == 48
    assert ext.testtime_methods == ["sft", "vpo", "vpo:none"] and ext.testtime_feedback == "statements"
    assert smoke.testtime_rounds >= 1  # the smoke chain exercises the loop
    assert load_config("extended").analysis.n_video == load_config("cpu").analysis.n_video


def test_run_loop_on_fewer_queries_reuses_the_log(tmp_path):
    calls = {"rewrite": [], "render": 0}
    _loop(tmp_path, calls)
    calls = {"rewrite": [], "render": 0}
    recs = testtime.run_loop(
        "vpo",
        [{"id": "q2", "query": "blue box"}],
        {"q2": "p2"},
        None,
        None,
        None,
        checklist,
        3,
        tmp_path / "tt.jsonl",
    )
    assert {r["id"] for r in recs} == {"q2"} and len(recs) == 3  # nothing rendered or rewritten again


# ---- the notebook's calls --------------------------------------------------------------------------------------


def test_length_rewards_and_probe_models():
    frame = pd.DataFrame({"id": ["a", "b", "c"], "method": ["vpo"] * 3, "reward": [0.2, 0.5, 0.9]})
    prompts = {"vpo": {"a": "one", "b": "one two", "c": "one two three"}}
    assert diagnostics.with_words(frame, prompts)["words"].tolist() == [1, 2, 3]
    table = diagnostics.length_rewards({"A": frame, "B": frame.iloc[:0]}, prompts, n_boot=50)
    assert list(table["model"]) == ["A"] and table.iloc[0]["spearman"] == pytest.approx(1.0)

    class Fake:
        def __init__(self, value):
            self.value = value

        def render(self, prompts, seeds):
            return [None for _ in prompts]

        def checklist(self, query):
            return [query]

        def score(self, questions, video):
            return {"score": self.value, "max_score": 1.0}

    queries = [{"id": "a", "query": "x", "caption": "c1"}, {"id": "b", "query": "y", "caption": "c2"}]
    recs = diagnostics.probe_models({"A": Fake(1.0), "B": Fake(0.5)}, queries, lambda i: 0, batch=4)
    assert len(recs) == 12 and {(r["model"], r["reward"]) for r in recs} == {("A", 1.0), ("B", 0.5)}


def test_testtime_summary_and_plots(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    recs = {}
    for method in ("sft", "vpo"):
        for i in ("a", "b"):
            for rnd, reward in ((1, 0.25), (2, 0.75)):
                recs[(method, i, rnd)] = {"method": method, "id": i, "round": rnd, "rendered": True, "reward": reward,
                                          "best_reward": reward, "fresh_reward": reward / 2, "videos": rnd, "stopped": False}  # fmt: skip
    bcfg = load_config("smoke").beyond
    rounds, gains, part = testtime.summary(list(recs.values()), 2, bcfg, n_boot=50)
    assert part["n_queries"] == 2 and part["max_rounds"] == bcfg.testtime_rounds and len(part["rounds"]) == 4
    assert rounds.set_index(["method", "round"]).loc[("vpo", 2), "best_reward"] == 0.75
    frame = pd.DataFrame(
        {"id": ["a", "a"], "method": ["sft", "vpo"], "reward": [0.5, 0.75], "pass_rate": [0.5, 1.0]}
    )
    dims = pd.DataFrame({"kind": ["colour"], "delta": [0.25], "lo": [0.0], "hi": [0.5], "model": ["A"]})
    by_model = transfer.by_model({"A": frame, "B": frame}, n_boot=20)
    figs = [beyond.plot_testtime_rounds(rounds), beyond.plot_models(by_model),
            beyond.plot_diagnostics(frame, {"sft": {"a": "x y"}, "vpo": {"a": "x y z"}}, dims, "vpo")]  # fmt: skip
    for i, fig in enumerate(figs):
        fig.savefig(tmp_path / f"{i}.png")
        assert (tmp_path / f"{i}.png").stat().st_size > 0


def test_run_model_b_with_a_fake_backend(tmp_path, monkeypatch):
    from vpolib.analysis import video_frame

    class Fake:  # model B: the reward is the prompt's number of words / 4, whatever the seed
        def render(self, prompts, seeds):
            return [np.full((1,), len(p.split())) for p in prompts]

        def checklist(self, query):
            from vpolib.checklist import Question

            return [Question(id="c", text="Is it red?", kind="colour")]

        def score(self, questions, video):
            return {"score": float(video[0]), "max_score": 4.0, "answers": {"c": "yes"}}

        def save(self, video, gif):
            gif.parent.mkdir(parents=True, exist_ok=True)
            gif.write_bytes(b"GIF")

    monkeypatch.setattr(transfer, "model_backend", lambda cfg, model_dir: Fake())
    cfg = load_config("smoke")
    shapes = [{"id": "s1", "query": "red ball"}, {"id": "s2", "query": "blue box"}]
    prompts = {"sft": {"s1": "a b", "s2": "a"}, "vpo": {"s1": "a b c d", "s2": "a b"}}
    frame_a = video_frame(
        [{"id": i, "method": m, "score": 1.0, "max_score": 2.0} for i in ("s1", "s2") for m in prompts]
    )
    out = transfer.run_model_b(
        cfg, shapes, prompts, frame_a, tmp_path / "b.jsonl", tmp_path, lambda i: 0, n_boot=20
    )
    b = out["by_model"].set_index(["model", "method"])["reward"]
    assert b[("B", "vpo")] == pytest.approx((1.0 + 0.5) / 2) and b[("A", "vpo")] == 0.5
    gains = out["gains"].set_index(["model", "baseline"])["gain"]
    assert (
        gains[("B", "sft")] == pytest.approx(((1.0 - 0.5) + (0.5 - 0.25)) / 2) and gains[("A", "sft")] == 0.0
    )
    # 2 methods x 2 queries x the smoke profile's 2 eval seeds (the fake's reward ignores the seed)
    assert out["summary"]["counts"]["rendered"] == 8 and out["summary"]["win_rates"][0]["win_rate"] == 1.0
