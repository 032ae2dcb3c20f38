"""A run killed at any point and resumed writes exactly what an uninterrupted run writes (stage 04, smoke).

Stage 04 samples k prompts per query (random), renders videos (random noise) and scores them: every draw is
keyed by the run seed and the query ids, never by how far a random generator had got.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vpolib.paths import REPO_ROOT

pytestmark = pytest.mark.notebook
# Small batches so the stage is many steps long and a kill lands in the middle of it.
SETS = ["--set", "generation_batch=4", "--set", "feedback.render_batch=4", "--set", "feedback.n_queries=8"]
COMPARED = [
    "prompts.jsonl",
    "scores.jsonl",
    "checklists.jsonl",
    "text_pairs.jsonl",
    "video_pairs.jsonl",
    "pairs.jsonl",
    "text_critique_log.jsonl",
]


def stage04(run_dir: Path) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "vpolib",
        "run",
        "--profile",
        "smoke",
        "--run-dir",
        str(run_dir),
        "--from",
        "04",
        "--to",
        "04",
        "--no-progress",
        *SETS,
    ]
    return subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )


def copy_inputs(src: Path, dst: Path) -> Path:
    for stage in ("01_data", "02_refine", "03_sft"):
        shutil.copytree(src / stage, dst / stage)
    shutil.copy(src / "manifest.json", dst / "manifest.json")
    return dst


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_killed_and_resumed_stage_writes_what_an_uninterrupted_run_writes(smoke_stage, tmp_path):
    run_dir, _, _ = smoke_stage("03_sft")
    whole = copy_inputs(run_dir, tmp_path / "whole")
    assert stage04(whole).wait(timeout=600) == 0

    killed = copy_inputs(run_dir, tmp_path / "killed")
    proc = stage04(killed)
    stage = killed / "04_feedback"
    deadline = time.time() + 300
    # kill it (SIGKILL, the whole process group: runner and kernel) once some videos are scored
    while lines(stage / "scores.jsonl") < 4 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (stage / "metrics.json").exists(), "the stage finished before the kill: nothing was tested"
    partial = lines(stage / "scores.jsonl")
    assert stage04(killed).wait(timeout=600) == 0

    for name in COMPARED:
        a, b = whole / "04_feedback" / name, stage / name
        assert a.exists() == b.exists(), name
        if a.exists():
            assert a.read_bytes() == b.read_bytes(), f"{name} differs after resume"
    gifs = sorted(p.name for p in (whole / "04_feedback" / "videos").glob("*.gif"))
    assert gifs and all(
        (whole / "04_feedback/videos" / g).read_bytes() == (stage / "videos" / g).read_bytes() for g in gifs
    )
    metrics = json.loads((stage / "metrics.json").read_text())
    assert 0 < partial < metrics["n_videos"]  # the kill really fell in the middle
