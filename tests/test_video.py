"""Video backends: the tiny CogVideoX code path, checklist tallies, frame-statistics answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vpolib.checklist import FRAME_STATS, Question, frame_stats_answer, tally
from vpolib.config import load_config
from vpolib.io import read_jsonl, write_jsonl
from vpolib.shards import shard_file
from vpolib.video import make_video_backend, merge_renders


@pytest.fixture(scope="module")
def tiny_backend():
    cfg = load_config(
        "smoke",
        {
            "video.backend": "cogvideox",
            "video.cogvideox_model": "tiny",
            "video.reward": "frame-stats",
        },
    )
    return make_video_backend(cfg, texts=["a red ball moves left", "a blue square spins"] * 10)


def test_tiny_cogvideox_renders_uint8_frames_of_the_right_shape(tiny_backend):
    videos = tiny_backend.render(["a red ball moves left", "a blue square"], seed=3)
    assert videos.shape == (2, 9, 16, 16, 3) and videos.dtype == np.uint8  # [B, F, H, W, 3]
    again = tiny_backend.render(["a red ball moves left", "a blue square"], seed=3)
    assert np.array_equal(videos, again)  # eval mode + seeded generator: repeatable


def test_tiny_cogvideox_scores_keep_every_answer(tiny_backend):
    video = tiny_backend.render(["a red ball"], seed=0)[0]
    questions = tiny_backend.checklist("a red ball")
    res = tiny_backend.score(questions, video)
    assert set(res["answers"]) == {q.id for q in FRAME_STATS}
    assert res["max_score"] == 3.0
    assert res["score"] == sum(a == "yes" for a in res["answers"].values())


def test_tally_weights_and_missing_answers():
    qs = [Question("1", "x", 0.5), Question("2", "y", 2.0), Question("3", "z", 1.0)]
    res = tally(qs, ["Yes", False, "maybe"])
    assert res == {"answers": {"1": "yes", "2": "no", "3": None}, "score": 0.5, "max_score": 3.5}


def test_frame_stats_on_hand_made_videos():
    black = np.zeros((4, 8, 8, 3), np.uint8)
    assert frame_stats_answer(black, FRAME_STATS) == [False, False, False]
    moving = np.zeros((4, 8, 8, 3), np.uint8)
    for f in range(4):
        moving[f, :, 2 * f : 2 * f + 4] = 255  # a white bar sliding right
    moving[..., :] = np.maximum(moving, 60)
    assert frame_stats_answer(moving, FRAME_STATS) == [True, True, True]


def test_shapesworld_adapter_normalises_answers(monkeypatch):
    import types

    import vpolib
    from vpolib.video import ShapesWorldBackend

    calls = {}
    fake = types.SimpleNamespace(
        load_pipeline=lambda path: calls.setdefault("path", path),
        generate=lambda pipe, prompts, seed, steps, guidance: np.zeros((len(prompts), 2, 4, 4, 3), np.uint8),
        checklist=lambda query: [Question("colour", "red?", 2.0), Question("motion", "up?", 1.0)],
        score_video=lambda questions, video: {"answers": {"colour": True, "motion": False}, "score": 2.0},
    )
    monkeypatch.setattr(vpolib, "shapesworld", fake, raising=False)
    backend = ShapesWorldBackend("some/dir", steps=2, guidance=1.0)
    assert str(calls["path"]).endswith("some/dir")
    assert backend.render(["a", "b"], seed=0).shape == (2, 2, 4, 4, 3)
    res = backend.score(backend.checklist("red ball up"), None)
    assert res == {"answers": {"colour": "yes", "motion": "no"}, "score": 2.0, "max_score": 3.0}


def _prompts(run):
    rows = [
        {"id": f"q{i}", "query": q, "prompts": [f"{q}, cinematic", f"{q}, at dusk"]}
        for i, q in enumerate(["a red ball moves left", "a blue square spins", "a green cat", "two birds"])
    ]
    write_jsonl(run / "04_feedback" / "prompts.jsonl", rows)
    return rows


@pytest.fixture(scope="module")
def tiny_dir(tiny_backend, tmp_path_factory):
    """The tiny CogVideoX saved as a model dir: every process loads the same weights and tokenizer from it,
    as with the real model (its T5 tokenizer is trained here, and Unigram training is not reproducible)."""
    path = tmp_path_factory.mktemp("tiny-cogvideox")
    tiny_backend.pipe.save_pretrained(path)
    return path


def _render(run, processes, model_dir):
    import subprocess
    import sys

    from vpolib.paths import REPO_ROOT
    from vpolib.video import TINY_CALL

    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(REPO_ROOT / "configs/accelerate/cpu_ddp.yaml"),
        "--num_processes",
        str(processes),
        "--main_process_port",
        "0",
        "-m",
        "vpolib.video",
        "render",
        "--run-dir",
        str(run),
        "--profile",
        "smoke",
        "--set",
        "video.backend=cogvideox",
        "--set",
        f"video.cogvideox_model={model_dir}",
        "--set",
        f"video.cogvideox_call={json.dumps(TINY_CALL)}",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res.stdout


def test_sharded_render_with_two_processes_merges_and_matches_one_process(tmp_path, tiny_dir):
    """`accelerate launch --num_processes 2 -m vpolib.video render` on the tiny CogVideoX: one log per shard,
    merged into one record per video, and the same bytes as a 1-process render (per-query seeds)."""
    rows = _prompts(tmp_path / "two")
    out = _render(tmp_path / "two", 2, tiny_dir)
    assert "merged 8 videos" in out
    stage = tmp_path / "two" / "04_feedback"
    logs = sorted(p.name for p in (stage / "shards").iterdir())
    assert logs == ["renders-00-of-02.jsonl", "renders-01-of-02.jsonl"]
    shards = {r["id"]: r["shard"] for r in read_jsonl(stage / "renders.jsonl")[0]}
    assert shards == {"q0": 0, "q1": 1, "q2": 0, "q3": 1}  # each query rendered by exactly one process
    merged = read_jsonl(stage / "renders.jsonl")[0]
    assert [(r["id"], r["k"]) for r in merged] == [(r["id"], k) for r in rows for k in range(2)]
    _prompts(tmp_path / "one")
    _render(tmp_path / "one", 1, tiny_dir)
    one = read_jsonl(tmp_path / "one" / "04_feedback" / "renders.jsonl")[0]
    for a, b in zip(merged, one, strict=True):
        assert (stage / a["video"]).read_bytes() == (
            tmp_path / "one" / "04_feedback" / b["video"]
        ).read_bytes()


def test_merge_keeps_one_record_per_video(tmp_path):
    rec = {"key": "q/0", "id": "q", "k": 0, "video": "videos/q_0.gif"}
    write_jsonl(shard_file(tmp_path, "renders", 0, 2), [rec, {**rec, "key": "a/1", "id": "a", "k": 1}])
    earlier = [{**rec, "shard": 0}]  # an earlier 1-shard run of the same video
    write_jsonl(shard_file(tmp_path, "renders", 0, 1), earlier)
    assert [r["key"] for r in merge_renders(tmp_path)] == ["a/1", "q/0"]
