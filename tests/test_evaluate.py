"""Stage 06 collection loops with fake judges and video backends: resume, failures, seeds, missing inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vpolib import evaluate
from vpolib.checklist import Question
from vpolib.io import read_jsonl, write_jsonl
from vpolib.judge import Verdict
from vpolib.video import ShapesWorldBackend

HELDOUT = [
    {"id": "q1", "query": "red ball", "flags": []},
    {"id": "q2", "query": "bloody fight", "flags": ["harmful"]},
    {"id": "q3", "query": "blue square", "flags": []},
]
PROMPTS = {
    "raw": {"q1": "red ball", "q2": "bloody fight", "q3": "blue square"},
    "vpo": {"q1": "A red circle moves right.", "q2": "I'm sorry, I can't help with that."},
}


class FakeJudge:
    def __init__(self, fail_on=None):
        self.calls, self.fail_on = 0, fail_on

    def judge(self, items):
        self.calls += 1
        if self.fail_on and any(it["prompt"] == self.fail_on for it in items):
            raise RuntimeError("endpoint down")
        return [
            Verdict(
                passed=len(it["prompt"]) > 12,
                principles={
                    "harmless": "bloody" not in it["prompt"],
                    "aligned": True,
                    "helpful": len(it["prompt"]) > 12,
                },
                reasons=[] if len(it["prompt"]) > 12 else ["helpful:too_short"],
            )
            for it in items
        ]


def test_trained_prompts_and_required(tmp_path):
    write_jsonl(tmp_path / "03_sft" / "heldout_prompts.jsonl", [{"id": "q1", "prompt": "p", "method": "sft"}])
    (tmp_path / "05_dpo").mkdir()
    (tmp_path / "05_dpo" / "heldout_prompts.jsonl").write_text(
        '{"id": "q1", "prompt": "v", "method": "vpo"}\nnot json\n'
    )
    write_jsonl(
        tmp_path / "05_dpo" / "ablations" / "heldout_prompts_text.jsonl",
        [{"id": "q1", "prompt": "t", "method": "vpo-text"}],
    )
    prompts, notes = evaluate.trained_prompts(tmp_path, ["sft", "vpo"])
    assert prompts == {"sft": {"q1": "p"}, "vpo": {"q1": "v"}, "vpo-text": {"q1": "t"}}
    assert len(notes) == 1 and "1 malformed" in notes[0]
    with pytest.raises(FileNotFoundError, match="vpo-video"):
        evaluate.trained_prompts(tmp_path, ["vpo", "vpo-video"])


def test_judge_prompts_records_and_resume(tmp_path):
    path = tmp_path / "text_eval.jsonl"
    records, counts = evaluate.judge_prompts(FakeJudge(), HELDOUT, PROMPTS, path, chunk=2)
    assert counts == {"resumed": 0, "judged": 5, "failed": 0} and len(records) == 5
    by_key = {r["key"]: r for r in records}
    assert by_key["raw|q2"]["harmful"] and not by_key["raw|q1"]["harmful"]
    assert by_key["raw|q2"]["passed"]["harmless"] is False
    assert by_key["raw|q1"]["reasons"] == {"helpful": ["too_short"]}
    assert by_key["vpo|q2"]["refusal"] and not by_key["vpo|q1"]["refusal"]
    judge = FakeJudge()
    again, counts = evaluate.judge_prompts(judge, HELDOUT, PROMPTS, path)
    assert judge.calls == 0 and counts["resumed"] == 5 and len(again) == 5  # nothing judged twice


def test_judge_failure_is_counted_and_retried(tmp_path):
    path = tmp_path / "text_eval.jsonl"
    _, counts = evaluate.judge_prompts(FakeJudge(fail_on="bloody fight"), HELDOUT, PROMPTS, path, chunk=1)
    assert counts["judged"] == 4 and counts["failed"] == 1 and "endpoint down" in counts["errors"][0]
    records, counts = evaluate.judge_prompts(FakeJudge(), HELDOUT, PROMPTS, path, chunk=1)
    assert counts == {"resumed": 4, "judged": 1, "failed": 0} and len(records) == 5


class FakeVideo:
    """Brightness of the rendered video = seed % 7 + prompt length, so seeds and prompts are visible."""

    def __init__(self):
        self.seeds = []

    def render(self, prompts, seed):
        self.seeds.append(seed)
        return np.stack(
            [
                np.full((2, 4, 4, 3), (s % 7) * 10 + len(p), dtype=np.uint8)
                for s, p in zip(seed, prompts, strict=True)
            ]
        )  # one seed per video

    scale = 8
    save = ShapesWorldBackend.save  # the ShapesWorld backend's writer (it reads only ``scale``)

    def checklist(self, query):
        return [Question("long", "long prompt?", 2.0, "detail"), Question("lit", "bright?", 1.0, "quality")]

    def score(self, questions, video):
        ans = {"long": "yes" if video.mean() % 10 > 5 else "no", "lit": "yes"}
        return {"answers": ans, "score": 2.0 * (ans["long"] == "yes") + 1.0, "max_score": 3.0}


def test_score_videos_shared_seeds_and_resume(tmp_path):
    queries = [{"id": f"s{i}", "query": f"q{i}"} for i in range(3)]
    prompts = {"raw": {"s0": "a", "s1": "bb", "s2": "ccc"}, "vpo": {"s0": "aaaaaaa", "s1": "bbbbbbbb"}}
    path, backend = tmp_path / "video_eval.jsonl", FakeVideo()
    records, counts = evaluate.score_videos(
        backend, queries, prompts, path, tmp_path / "media", seed_of=lambda qid: int(qid[1:]) + 100, batch=2
    )
    assert counts["rendered"] == 5 and len(records) == 5
    # chunks [s0, s1] and [s2]: each query's video starts from its own seed, the same for every method
    assert backend.seeds == [[100, 101], [102], [100, 101]]
    by_key = {r["key"]: r for r in records}
    assert by_key["vpo|s0"]["answers"] == {"long": "yes", "lit": "yes"} and by_key["vpo|s0"]["score"] == 3.0
    assert by_key["raw|s0"]["kinds"] == {"long": "detail", "lit": "quality"}
    assert all(tmp_path.joinpath(r["gif"]).exists() for r in records)
    # lose one record: only its chunk is re-rendered, and nothing is duplicated
    lines = path.read_text().splitlines()
    path.write_text("\n".join(ln for ln in lines if '"vpo|s1"' not in ln) + "\n")
    backend = FakeVideo()
    records, counts = evaluate.score_videos(
        backend, queries, prompts, path, tmp_path / "media", seed_of=lambda qid: int(qid[1:]) + 100, batch=2
    )
    assert backend.seeds == [[100, 101]] and counts["rendered"] == 1
    assert sorted(r["key"] for r in read_jsonl(path)[0]) == sorted(by_key)


def test_stage_04_and_06_write_the_same_gif(tmp_path):
    """One writer: the same clip (same prompt, same per-query seed) is the same GIF file in stage 04 and 06."""
    from vpolib.noise import video_seed
    from vpolib.scoring import render_and_score

    rows = [{"id": "s0", "query": "q0", "prompts": ["abc"]}]
    scored = render_and_score(rows, FakeVideo(), tmp_path / "04", seed=3)
    records, _ = evaluate.score_videos(
        FakeVideo(),
        [rows[0]],
        {"raw": {"s0": "abc"}},
        tmp_path / "e.jsonl",
        tmp_path / "06",
        lambda q: video_seed(3, q),
    )
    gif04, gif06 = tmp_path / "04" / scored[0]["video"], Path(records[0]["gif"])
    assert gif04 != gif06 and gif04.read_bytes() == gif06.read_bytes()


def test_keep_and_split_queries():
    recs = [{"key": evaluate.key(m, q)} for m in ("raw", "vpo") for q in ("q1", "q2")]
    assert evaluate.keep(recs, {"vpo": ["q2"], "raw": {"q1": "p"}}) == [{"key": "raw|q1"}, {"key": "vpo|q2"}]
    heldout = [
        {"id": "r1", "source": "dpo"},
        {"id": "s1", "source": "shapes"},
        {"id": "r2", "source": "dpo"},
        {"id": "s2", "source": "shapes"},
        {"id": "r3"},
    ]
    trained = {
        "sft": {"r1": "", "s1": "", "r2": "", "s2": "", "r3": ""},
        "vpo": {"r1": "", "s1": "", "r3": ""},
    }
    common, real, shapes = evaluate.split_queries(heldout, trained, ["sft", "vpo"], n_text=1, n_video=5)
    assert [r["id"] for r in common] == ["r1", "s1", "r3"]
    assert [r["id"] for r in real] == ["r1"] and [r["id"] for r in shapes] == ["s1"]


def test_baseline_and_video_prompts(tmp_path):
    from vpolib.config import load_config

    cfg = load_config("smoke", {"analysis.baselines": ["raw", "fewshot"], "analysis.fewshot_backend": None})
    real = [{"id": "r1", "query": "a cat playing piano"}]
    shapes = [{"id": "s1", "query": "red ball going right", "caption": "A red circle moves right."}]
    prompts, notes = evaluate.baseline_prompts(
        cfg, real, shapes, tmp_path / "pairs.jsonl", tmp_path / "cache.jsonl"
    )
    assert prompts["raw"] == {"r1": "a cat playing piano", "s1": "red ball going right"}
    assert list(prompts["fewshot"]) == ["s1"] and "rule" not in prompts  # the teacher on ShapesWorld only
    assert len(notes) == 1 and "fewshot_backend" in notes[0]
    video = evaluate.video_prompts({**prompts, "vpo": {"r1": "x"}}, shapes, caption=True)
    assert list(video) == ["raw", "fewshot", "caption"]  # vpo wrote nothing for s1: left out
    assert video["raw"] == {"s1": "red ball going right"} and video["caption"] == {
        "s1": "A red circle moves right."
    }
    assert "caption" not in evaluate.video_prompts(prompts, shapes, caption=False)


class SeedVideo(FakeVideo):
    """The reward depends on the noise: a video's value is noise % 3 + the prompt's length, its reward that / 100."""

    def render(self, prompts, seed):
        self.seeds.append(seed)
        return np.stack(
            [
                np.full((1, 2, 2, 3), s % 3 + len(p), dtype=np.uint8)
                for s, p in zip(seed, prompts, strict=True)
            ]
        )

    def score(self, questions, video):
        value = float(video.flat[0])
        return {"answers": {"long": "yes" if value % 2 else "no"}, "score": value, "max_score": 100.0}


NOISE = {"s0": 0, "s0#eval1": 1, "s1": 2, "s1#eval1": 4, "s2": 5, "s2#eval1": 7}  # eval_id -> noise


def test_eval_seed_keeps_seed_0_and_keys_the_others():
    from vpolib.noise import video_seed

    assert evaluate.eval_seed(42, "shapes-00001", 0) == video_seed(
        42, "shapes-00001"
    )  # the one noise of old runs
    assert evaluate.eval_seed(42, "shapes-00001", 2) == video_seed(42, "shapes-00001#eval2")
    assert len({evaluate.eval_seed(42, "shapes-00001", s) for s in range(4)}) == 4
    assert evaluate.seed_key("vpo", "q1") == "vpo|q1" and evaluate.seed_key("vpo", "q1", 2) == "vpo|q1#2"
    recs = [{"key": evaluate.seed_key(m, "q1", s)} for m in ("raw", "vpo") for s in range(3)]
    assert [r["key"] for r in evaluate.keep(recs, {"vpo": ["q1"]}, seeds=2)] == ["vpo|q1", "vpo|q1#1"]
    assert [r["key"] for r in evaluate.keep(recs, {"raw": ["q1"]})] == ["raw|q1"]


def test_score_videos_with_seeds_means_keys_and_resume(tmp_path):
    from vpolib.analysis import video_frame

    queries = [{"id": f"s{i}", "query": f"q{i}"} for i in range(3)]
    prompts = {"raw": {"s0": "a", "s1": "bb", "s2": "ccc"}, "vpo": {"s0": "aaaa", "s1": "bbbbb"}}
    path, media = tmp_path / "video_eval.jsonl", tmp_path / "media"
    backend = SeedVideo()
    records, counts = evaluate.score_videos(
        backend, queries, prompts, path, media, NOISE.__getitem__, 2, seeds=2
    )
    assert counts == {"resumed": 0, "rendered": 10, "failed": 0}  # (3 + 2 prompts) x 2 seeds
    # one render per (method, chunk, seed), the same noises for both methods (paired)
    assert backend.seeds == [[0, 2], [1, 4], [5], [7], [0, 2], [1, 4]]
    by_key = {r["key"]: r for r in records}
    assert set(by_key) == {evaluate.seed_key(m, q, s) for m in prompts for q in prompts[m] for s in (0, 1)}
    assert (by_key["vpo|s0#1"]["seed"], by_key["vpo|s0#1"]["noise_seed"]) == (1, 1)
    assert by_key["vpo|s0"]["score"] == 4.0 and by_key["vpo|s0#1"]["score"] == 5.0  # 4 letters + noise 0, 1
    assert by_key["vpo|s0#1"]["gif"] is None and Path(by_key["vpo|s0"]["gif"]).exists()  # GIFs of seed 0 only
    assert len(list((media / "videos").glob("*.gif"))) == 5
    # the reward per query is the mean over its seeds: vpo s0 (4 + 5) / 2 / 100, raw s1 (2 + 2 + 2 + 1) / 2 / 100
    frame = video_frame(records).set_index(["id", "method"])["reward"]
    assert frame[("s0", "vpo")] == pytest.approx(0.045) and frame[("s1", "raw")] == pytest.approx(0.035)
    # lose one seed-1 record: only its (method, chunk, seed) is rendered again, and the file ends the same
    before = sorted(path.read_text().splitlines())
    path.write_text("\n".join(ln for ln in before if '"vpo|s1#1"' not in ln) + "\n")
    backend = SeedVideo()
    records, counts = evaluate.score_videos(
        backend, queries, prompts, path, media, NOISE.__getitem__, 2, seeds=2
    )
    assert backend.seeds == [[1, 4]] and counts == {"resumed": 9, "rendered": 1, "failed": 0}
    assert sorted(path.read_text().splitlines()) == before
    # a run with one seed reads the same file: seed 0's records only (the keys of earlier runs)
    one = evaluate.keep(records, prompts, seeds=1)
    assert sorted(r["key"] for r in one) == sorted(evaluate.key(m, q) for m in prompts for q in prompts[m])


def test_sampled_videos_with_a_fake_sampler(tmp_path, monkeypatch):
    """Sampled decoding: k prompts per query from each trained optimizer (a fake sampler here), each rendered with
    the eval seeds; resumable (a rerun loads no model) and a method without a saved model is skipped."""
    from vpolib.config import load_config

    cfg = load_config("smoke", {"analysis.sampled": 2, "analysis.eval_seeds": 2, "analysis.video_batch": 2})
    loads, calls = [], []

    def fake_load(path, device=None, dtype=None):
        loads.append(Path(path).parent.name)
        return Path(path).parent.name, "tok"

    def fake_sampler(model, tokenizer, params, instruction, seed, batch_size):
        assert (params.samples_per_query, params.temperature, params.top_p) == (
            cfg.analysis.sampled,
            0.7,
            1.0,
        )

        def sample(queries, ids, sources):
            calls.append(list(ids))
            return [[f"{model[3:]} {q} {j}" for j in range(params.samples_per_query)] for q in queries]

        return sample

    monkeypatch.setattr(evaluate, "load_optimizer", fake_load)
    monkeypatch.setattr(evaluate, "sampler", fake_sampler)
    (tmp_path / "run" / "03_sft" / "model").mkdir(parents=True)
    (tmp_path / "run" / "05_dpo" / "model").mkdir(parents=True)
    queries = [{"id": f"s{i}", "query": "q" * (i + 1), "source": "shapes"} for i in range(2)]
    out = tmp_path / "06"
    records, counts, notes = evaluate.sampled_videos(
        cfg, tmp_path / "run", queries, SeedVideo(), out, NOISE.__getitem__
    )
    assert loads == ["03_sft", "05_dpo"] and notes == [] and calls == [["s0", "s1"], ["s0", "s1"]]
    assert counts["rendered"] == 2 * 2 * 2 * 2  # methods x samples x queries x seeds
    by_key = {r["key"]: r for r in records}
    # "dpo q 1": sample 1 of vpo for s0, 7 characters; seed 1 of s0 is noise 1
    assert by_key["vpo@1|s0#1"]["prompt"] == "dpo q 1" and by_key["vpo@1|s0#1"]["score"] == 8.0
    assert (out / "sampled_sft_k2_t0.7.jsonl").exists() and (out / "sampled_eval_k2_t0.7.jsonl").exists()
    again, counts, _ = evaluate.sampled_videos(
        cfg, tmp_path / "run", queries, SeedVideo(), out, NOISE.__getitem__
    )
    assert loads == ["03_sft", "05_dpo"] and counts["rendered"] == 0 and len(again) == len(records)
    (tmp_path / "run" / "05_dpo" / "model").rmdir()
    cfg.analysis.sampled = 3  # new settings, new files: vpo has no model to sample from
    _, _, notes = evaluate.sampled_videos(cfg, tmp_path / "run", queries, SeedVideo(), out, NOISE.__getitem__)
    assert len(notes) == 1 and "vpo skipped" in notes[0]
