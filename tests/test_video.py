"""Video backends: the tiny CogVideoX code path, checklist tallies, frame-statistics answers (issue 3)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vpolib.config import load_config
from vpolib.video import (
    FRAME_STATS,
    Question,
    frame_stats_answer,
    make_backend,
    tally,
    visionreward_checklist,
)


@pytest.fixture(scope="module")
def tiny_backend():
    cfg = load_config(
        "smoke",
        {
            "feedback.backend": "cogvideox",
            "feedback.cogvideox_model": "tiny",
            "feedback.reward": "frame-stats",
        },
    )
    return make_backend(cfg, texts=["a red ball moves left", "a blue square spins"] * 10)


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


def test_visionreward_checklist_fills_the_query_and_weights(tmp_path):
    (tmp_path / "q.txt").write_text('Does the video meet "[[prompt]]"?\n\nIs it sharp?\n')
    (tmp_path / "w.json").write_text(json.dumps([0.95, 0.0]))
    qs = visionreward_checklist(str(tmp_path / "q.txt"), str(tmp_path / "w.json"))("a cat")
    assert qs == [
        Question("1", 'Does the video meet "a cat"?', 0.95, "visionreward"),
        Question("2", "Is it sharp?", 0.0, "visionreward"),
    ]
    assert tally(qs, ["yes", "yes"])["max_score"] == 0.95


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
