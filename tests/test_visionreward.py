"""VisionReward-Video as its own job: the 64 questions and weights, the reference's score and dominance,
and the sharded scoring job (2 processes under ``accelerate launch`` on CPU, with the pixel stand-in)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from vpolib import visionreward
from vpolib.checklist import tally
from vpolib.config import load_config
from vpolib.dominance import NOT_DOMINANT, dominant_pairs, drop_reason
from vpolib.io import read_jsonl, write_jsonl
from vpolib.paths import REPO_ROOT
from vpolib.scoring import one_video, render_and_score, run_jobs
from vpolib.video import save_media


def test_the_checklist_is_the_references_64_questions_and_weights():
    qs = visionreward.questions()
    assert [q["id"] for q in qs] == list(range(1, 65))
    # the two sources agree: VPO's full-precision vector rounds to the VisionReward paper's 3-decimal column
    assert all(round(q["weight"], 3) == pytest.approx(q["paper_weight"]) for q in qs)
    assert sum(q["weight"] > 0 for q in qs) == 29  # VisionReward_video_qa_select.txt: the non-zero ones
    assert sum(q["weight"] for q in qs) == pytest.approx(
        6.2772, abs=1e-4
    )  # 0.5 / 6.2772: cpu's margin 0.0797
    asked = visionreward.checklist("a cat")
    assert asked[0].text == 'Does the video meet all the requirements stated in the text "a cat"?'
    assert all("[[prompt]]" not in q.text for q in asked)


def test_score_is_the_references_get_score():
    asked = visionreward.checklist("q")
    only_alignment = ["yes" if q.id in ("1", "4") else "no" for q in asked]
    assert tally(asked, only_alignment)["score"] == pytest.approx(0.9543901856422174 + 1.141818673357406)
    assert tally(asked, ["yes"] * 64)["score"] == pytest.approx(6.2772, abs=1e-4)


def test_a_zero_weight_answer_vetoes_a_pair():
    """Strict dominance over all 64: A wins item 1 (weight 0.954, a gap over the reference's 0.5 margin),
    but B wins item 3 (weight 0), so neither dominates, as in the reference's compare_fn_strict."""
    asked = visionreward.checklist("q")
    base = ["no"] * 64
    a = tally(asked, ["yes" if q.id == "1" else x for q, x in zip(asked, base, strict=True)])
    b = tally(asked, ["yes" if q.id == "3" else x for q, x in zip(asked, base, strict=True)])
    assert a["score"] - b["score"] > 0.5
    assert drop_reason(a, b, margin=0.5) == NOT_DOMINANT
    c = tally(asked, base)  # C answers "no" everywhere: A dominates it by more than the margin
    assert drop_reason(a, c, margin=0.5) is None


def test_per_second_takes_the_frame_nearest_each_second():
    video = np.arange(49)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)  # 49 frames at 8 fps
    assert visionreward.per_second(video, 8.0)[:, 0, 0, 0].tolist() == [0, 8, 16, 24, 32, 40, 48]
    assert len(visionreward.per_second(np.zeros((500, 1, 1, 3)), 8.0)) == 24  # at most 24 frames


def _renders(run):
    """Four queries x 2 videos as the sharded renderer leaves them: GIFs plus renders.jsonl."""
    stage = run / "04_feedback"
    rows, rng = [], np.random.default_rng(0)
    for q in range(4):
        for k in range(2):
            level = 40 + 40 * k + 10 * q
            video = np.full((9, 8, 8, 3), level, np.uint8)
            if k:  # the second video of each query moves and has texture
                video = (video + rng.integers(0, 120, video.shape)).astype(np.uint8)
            path = stage / "videos" / f"q{q}_{k}.gif"
            save_media(video, path)
            rows.append(
                {"key": f"q{q}/{k}", "id": f"q{q}", "k": k, "query": f"query {q}", "prompt": f"p{q}{k}",
                 "video": str(path.relative_to(stage))}
            )  # fmt: skip
    write_jsonl(stage / "renders.jsonl", rows)
    return stage


def _score(run, processes):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes)]
    cmd += ["--config_file", str(REPO_ROOT / "configs/accelerate/cpu_ddp.yaml"), "--main_process_port", "0"]
    cmd += ["-m", "vpolib.visionreward", "--run-dir", str(run), "--checklist", "frame-stats"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def test_two_process_job_writes_shards_that_merge_into_04s_files(tmp_path):
    stage = _renders(tmp_path / "two")
    assert "merged 8 scored videos" in _score(tmp_path / "two", 2)
    assert sorted(p.name for p in (stage / "shards").iterdir()) == [
        "scores-00-of-02.jsonl",
        "scores-01-of-02.jsonl",
    ]
    scores = read_jsonl(stage / "scores.jsonl")[0]
    assert [r["key"] for r in scores] == [f"q{q}/{k}" for q in range(4) for k in range(2)]
    assert [r["id"] for r in read_jsonl(stage / "checklists.jsonl")[0]] == ["q0", "q1", "q2", "q3"]
    # the still, flat video answers no to "moves" and "not blank"; the textured one yes: it dominates
    assert [r["score"] for r in scores if r["k"] == 0] == [1.0, 1.0, 1.0, 1.0]
    assert [r["score"] for r in scores if r["k"] == 1] == [3.0, 3.0, 3.0, 3.0]
    pairs, _ = dominant_pairs(scores, margin_fraction=0.0797)
    assert [(p["chosen"]["k"], p["rejected"]["k"]) for p in pairs] == [(1, 0)] * 4
    # one process gives the same scores, and a rerun finds everything done
    _renders(tmp_path / "one")
    _score(tmp_path / "one", 1)
    assert read_jsonl(tmp_path / "one" / "04_feedback" / "scores.jsonl")[0] == scores
    before = (stage / "shards" / "scores-00-of-02.jsonl").read_text()
    _score(tmp_path / "two", 2)
    assert (stage / "shards" / "scores-00-of-02.jsonl").read_text() == before


def test_04_reads_what_the_render_and_scoring_jobs_wrote(tmp_path):
    """scoring.run_jobs: the render job then the scoring job (1 process each, tiny CogVideoX, pixel
    checklist); render_and_score then only reads, and the worked example comes from the jobs' files."""
    launcher = f"{sys.executable} -m accelerate.commands.launch --num_processes 1 --cpu"
    overrides = {
        "video.backend": "cogvideox",
        "video.cogvideox_model": "tiny",
        "video.reward": "frame-stats",
        "feedback.render_processes": 1,
        "feedback.visionreward_launcher": launcher,
    }
    cfg = load_config("smoke", overrides)
    rows = [
        {"id": f"q{i}", "query": f"a red ball {i}", "prompts": [f"a red ball rolls {i}", "a ball"]}
        for i in range(2)
    ]
    scored = run_jobs(tmp_path, "smoke", overrides, cfg, rows)
    stage = tmp_path / "04_feedback"
    assert [v["key"] for v in scored] == ["q0/0", "q0/1", "q1/0", "q1/1"]
    assert all(v["max_score"] == 3.0 for v in scored)
    assert render_and_score(rows, None, stage, seed=0) == scored  # nothing left to render: read only
    questions, result = one_video(rows[1], None, stage, seed=0)
    assert [q.id for q in questions] == ["not_blank", "moves", "exposed"] and result == scored[2]
    with pytest.raises(RuntimeError, match="1 videos are missing"):
        render_and_score([{**rows[0], "prompts": [*rows[0]["prompts"], "new"]}], None, stage, seed=0)
