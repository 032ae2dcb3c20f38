"""ShapesWorld: renderer, query generator, checklist parser, detectors on ground truth, pipeline."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from vpolib.analysis import mean_ci
from vpolib.shapesworld import (
    checklist,
    generate,
    load_pipeline,
    make_queries,
    score_video,
)
from vpolib.shapesworld.evidence import caption_vs_query, validate_detectors
from vpolib.shapesworld.pipeline import ShapesWorldPipeline, build_components, build_tokenizer
from vpolib.shapesworld.render import render
from vpolib.shapesworld.reward import warn_if_constant
from vpolib.shapesworld.world import COLOURS, caption
from vpolib.tags import parse_tags
from vpolib.video import FPS, save_video

SQUARE = {
    "background": "black",
    "objects": [
        {
            "shape": "square",
            "colour": "red",
            "size": "large",
            "motion": "still",
            "start": [0.5, 0.5],
            "end": [0.5, 0.5],
        }
    ],
}
MOVER = {
    "background": "gray",
    "objects": [
        {
            "shape": "circle",
            "colour": "blue",
            "size": "small",
            "motion": "right",
            "start": [0.2, 0.5],
            "end": [0.8, 0.5],
        }
    ],
}


def test_render_draws_the_scene():
    video = render(SQUARE)
    assert video.shape == (8, 16, 16, 3) and video.dtype == np.uint8
    assert tuple(video[0, 8, 8]) == (230, 40, 40) and tuple(video[0, 0, 0]) == (0, 0, 0)
    red = (video[0] == (230, 40, 40)).all(-1).sum()
    assert 30 <= red <= 49  # side 2 * 0.85 * 0.24 * 16 = 6.5 px
    assert (video == video[0]).all()  # still


def test_render_moves_objects_and_is_deterministic():
    video = render(MOVER)
    xs = [np.argwhere((f.astype(int) - (50, 80, 240) == 0).all(-1))[:, 1].mean() for f in video]
    assert xs[-1] - xs[0] > 7 and all(b >= a for a, b in zip(xs, xs[1:], strict=False))
    assert (render(MOVER) == video).all()


def test_caption_style():
    assert caption(MOVER) == "A small blue circle moves from the left to the right on a gray background."


def test_make_queries_is_deterministic_and_well_formed():
    a, b = make_queries(200, 3), make_queries(200, 3)
    assert a == b and make_queries(200, 4) != a
    assert [q["id"] for q in a[:2]] == ["shapes-00001", "shapes-00002"]
    json.dumps(a)  # serialisable
    assert any(q["harmful"] for q in a) and not all(q["harmful"] for q in a)
    assert len({q["query"] for q in a}) > 180
    for q in a:
        parsed = parse_tags(q["query"])
        assert "-" not in parsed.content.split()[0] and parsed.content and not parsed.warnings
        for tag in parsed.tags:
            assert tag.name in {"neg", "ar", "motion", "fps", "gs", "seed"}
            if tag.name == "neg":  # a negative never names a colour that is in the scene
                assert tag.value in COLOURS and tag.value not in {o["colour"] for o in q["scene"]["objects"]}
        assert re.fullmatch(r"A (small|large) [a-z]+ [a-z]+ .+ on a (black|gray) background\.", q["caption"])


def test_checklist_reads_the_query_tags():
    """The checklist parses tags as every stage does (vpolib.tags): -neg items become questions, format tags
    and hyphenated words are not content."""
    ids = [q.id for q in checklist("red ball going right -neg blue -ar 16:9")]
    assert ids == ["o1_colour", "o1_shape", "o1_motion", "neg_blue", "q_stable", "q_intact"]
    assert [q.id for q in checklist("a well-lit box")][:2] == ["o1_object", "o1_shape"]


def test_checklist_from_a_terse_query():
    qs = checklist("crimson ball going right -neg navy -ar 16:9")
    assert [q.id for q in qs] == ["o1_colour", "o1_shape", "o1_motion", "neg_navy", "q_stable", "q_intact"]
    assert (qs[0].target["colour"], qs[1].target["shape"], qs[2].target["motion"]) == (
        "red",
        "circle",
        "right",
    )
    assert qs[3].target["colour"] == "blue" and sum(q.weight for q in qs) == 2 + 1 + 2 + 1 + 0.5 + 0.5


def test_checklist_from_a_caption_with_two_objects():
    qs = {
        q.id: q
        for q in checklist(
            "A small red circle moves from the left to the right and a large blue "
            "square bounces up and down on a gray background."
        )
    }
    assert qs["o1_motion"].target["motion"] == "right" and qs["o2_motion"].target["motion"] == "bouncing"
    assert qs["o2_size"].target["size"] == "large" and qs["background"].target["background"] == "gray"


def test_checklist_without_colour_asks_for_an_object():
    qs = checklist("a box falling")
    assert [q.id for q in qs[:3]] == ["o1_object", "o1_shape", "o1_motion"]


def test_score_video_on_ground_truth_and_on_a_wrong_clip():
    qs = checklist("big blue ball rising")  # MOVER is small and goes right
    res = score_video(qs, render(MOVER))
    assert res["answers"]["o1_colour"] and res["answers"]["o1_shape"]
    assert not res["answers"]["o1_motion"] and not res["answers"]["o1_size"]
    assert res["score"] == 2 + 1 + 0.5 + 0.5 and res["max_score"] == 2 + 1 + 0.5 + 2 + 0.5 + 0.5
    blank = np.zeros((8, 16, 16, 3), np.uint8)
    assert score_video(qs, blank)["score"] == 0.0


def test_detectors_match_ground_truth():
    acc = validate_detectors(n=25, seed=1)
    assert set(acc) >= {"colour", "shape", "size", "motion", "neg", "background", "quality"}
    assert all(v["accuracy"] >= 0.98 for v in acc.values()), acc


def test_warn_if_constant():
    with pytest.warns(RuntimeWarning, match="identical"):
        assert warn_if_constant([0.0, 0.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_if_constant([0.0, 1.0])


def test_media_export(tmp_path):
    video = render(MOVER)
    gif = Image.open(save_video(video, tmp_path / "a.gif", scale=8))
    assert gif.size == (128, 128) and gif.n_frames == len(video)
    assert abs(gif.info["duration"] - 1000 / FPS) <= 10  # GIF stores hundredths of a second
    assert save_video(video, tmp_path / "a.mp4", scale=8).stat().st_size > 0


@pytest.fixture(scope="module")
def tiny_pipe():
    torch.manual_seed(0)
    parts = build_components(
        build_tokenizer([caption(MOVER), caption(SQUARE)]), res=16, frames=8, channels=(8, 16), text_dim=16
    )
    parts.pop("noise_scheduler")
    pipe = ShapesWorldPipeline(**parts)
    pipe.unet.eval()
    pipe.text_encoder.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_two_step_generation(tiny_pipe):
    video = generate(tiny_pipe, ["a red square", "a blue circle", "x"], seed=0, steps=2, guidance=3.0)
    assert video.shape == (3, 8, 16, 16, 3) and video.dtype == np.uint8
    assert (generate(tiny_pipe, ["a red square", "a blue circle", "x"], seed=0, steps=2) == video).all()


def test_save_load_round_trip(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "p")
    again = load_pipeline(tmp_path / "p")
    a = generate(tiny_pipe, ["a red square"], seed=1, steps=2)
    assert (generate(again, ["a red square"], seed=1, steps=2) == a).all()
    assert again.tokenizer("red square").input_ids == tiny_pipe.tokenizer("red square").input_ids


def test_committed_pipeline_generates():
    pipe = load_pipeline()
    video = generate(pipe, [caption(MOVER)], seed=0, steps=2)
    assert video.shape == (1, 8, 16, 16, 3)


@pytest.mark.slow
def test_committed_model_follows_captions_better_than_queries():
    rows = caption_vs_query(load_pipeline(), make_queries(64, 99), seed=0, steps=20, guidance=3.0)
    gap = [r["caption_pass"] - r["query_pass"] for r in rows]
    assert mean_ci(gap, n_boot=1000)["lo"] > 0  # the lower CI bound of the paired gap is above zero
