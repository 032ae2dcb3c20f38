"""A run killed at any point and resumed writes exactly what an uninterrupted run writes (smoke profile).

Stage 02 resumes its critique log where it stopped. Stage 04 samples k prompts per query (random), renders
videos (random noise) and scores them: every draw is keyed by the run seed and the query ids, never by how far a
random generator had got. Stages 03 and 05 train: a training killed midway starts again from the start (there is
no checkpoint resume) and a model saved before the kill is reused, so they too end with what an uninterrupted
run writes.

Each test copies the smoke chain's earlier stages into two run dirs, runs the stage whole in one, and in the
other SIGKILLs it (the whole process group: runner and kernel) at a point it picks, then runs it again.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from artifacts import differences, files

from vpolib.paths import REPO_ROOT
from vpolib.progress import read_progress

pytestmark = pytest.mark.notebook
# Small batches so stage 04 is many steps long and a kill lands in the middle of it.
SETS_04 = ["--set", "generation_batch=4", "--set", "feedback.render_batch=4", "--set", "feedback.n_queries=8"]
COMPARED_04 = [
    "prompts.jsonl",
    "scores.jsonl",
    "checklists.jsonl",
    "text_pairs.jsonl",
    "video_pairs.jsonl",
    "pairs.jsonl",
    "text_critique_log.jsonl",
]
# About 100 teacher prompts instead of 56: the critique loop (chunks of 64) then writes its log in two parts, so
# a kill after its first row lands inside the loop.
SETS_02 = ["--set", "refine.vbench_limit=24"]
# The smoke SFT's 8 steps end within one progress write (every 0.5 s): 400 steps last several seconds, so the
# progress file shows a step done before the model is saved.
SETS_03 = ["--set", "sft.trainer.max_steps=400"]


def run_stage(run_dir: Path, stage: str, sets: list[str] = ()) -> subprocess.Popen:
    """``python -m vpolib run --profile smoke --from NN --to NN`` into ``run_dir``, in its own process group."""
    cmd = [sys.executable, "-m", "vpolib", "run", "--profile", "smoke", "--run-dir", str(run_dir)]
    cmd += ["--from", stage[:2], "--to", stage[:2], "--no-progress", *sets]
    return subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )


def finish(proc: subprocess.Popen, timeout: float = 600) -> None:
    """Wait for a stage run; fail with the end of its output when it fails."""
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]


def copy_inputs(src: Path, dst: Path, stage: str) -> Path:
    """The stages before ``stage`` (and the manifest) of run ``src``, copied to a new run dir ``dst``."""
    for earlier in sorted(src.glob("[0-9][0-9]_*")):
        if earlier.is_dir() and earlier.name[:2] < stage[:2]:
            shutil.copytree(earlier, dst / earlier.name)
    shutil.copy(src / "manifest.json", dst / "manifest.json")
    return dst


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def training(run_dir: Path) -> dict | None:
    """The training under way in that run, from the runner's progress file ("SFT steps" / "DPO steps": done,
    total), or None."""
    state = read_progress(Path(run_dir) / "progress.json") or {}
    return state if str(state.get("desc")).endswith(" steps") and not state.get("closed") else None


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 300) -> None:
    """SIGKILL the stage's process group once ``ready()`` (or at ``timeout``, or once it has ended)."""
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline and not ready():
        time.sleep(0.05)
    if proc.poll() is None:  # it may have ended first: the caller's "finished before the kill" check says so
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def kill_and_resume(
    chain: Path, tmp_path: Path, stage: str, ready: Callable[[Path], bool], sets: list[str] = ()
) -> tuple[Path, Path, dict[str, int]]:
    """Run ``stage`` whole in one copy of the ``chain`` run's earlier stages; in another, SIGKILL it once
    ``ready(stage_dir)``, check it had not finished, and run it again.

    Returns (the whole run's stage dir, the resumed one, ``{jsonl file: lines}`` the killed run had left).
    """
    whole = copy_inputs(chain, tmp_path / "whole", stage)
    finish(run_stage(whole, stage, sets))

    killed = copy_inputs(chain, tmp_path / "killed", stage)
    stage_dir = killed / stage
    kill_when(run_stage(killed, stage, sets), lambda: ready(stage_dir))
    assert not (stage_dir / "metrics.json").exists(), "the stage finished before the kill: nothing was tested"
    left = {name: lines(stage_dir / name) for name in files(stage_dir, "*.jsonl")}
    finish(run_stage(killed, stage, sets))
    return whole / stage, stage_dir, left


def test_killed_and_resumed_stage_writes_what_an_uninterrupted_run_writes(smoke_stage, tmp_path):
    chain, _, _ = smoke_stage("03_sft")
    # kill it once some videos are scored
    whole, stage, left = kill_and_resume(
        chain, tmp_path, "04_feedback", lambda d: lines(d / "scores.jsonl") >= 4, SETS_04
    )
    for name in COMPARED_04:
        a, b = whole / name, stage / name
        assert a.exists() == b.exists(), name
        if a.exists():
            assert a.read_bytes() == b.read_bytes(), f"{name} differs after resume"
    gifs = sorted(p.name for p in (whole / "videos").glob("*.gif"))
    assert gifs and all(
        (whole / "videos" / g).read_bytes() == (stage / "videos" / g).read_bytes() for g in gifs
    )
    metrics = json.loads((stage / "metrics.json").read_text())
    assert 0 < left.get("scores.jsonl", 0) < metrics["n_videos"]  # the kill really fell in the middle


@pytest.mark.slow
def test_stage02_killed_in_the_critique_loop_resumes_to_the_same_files(smoke_stage, tmp_path):
    chain, _, _ = smoke_stage("01_data")
    whole, stage, left = kill_and_resume(
        chain, tmp_path, "02_refine", lambda d: lines(d / "critique_log.jsonl") >= 1, SETS_02
    )
    metrics = json.loads((stage / "metrics.json").read_text())
    assert 0 < left["critique_log.jsonl"] < metrics["n_candidates"]  # the kill fell inside the loop
    for name in ("critique_log.jsonl", "sft.jsonl", "text_pairs.jsonl"):
        assert (whole / name).read_bytes() == (stage / name).read_bytes(), f"{name} differs after resume"
    # every JSONL (the teacher cache too) and metrics.json; the resumed run read its LLM teacher's replies from
    # the cache the killed one had written (hits, not generated): how it got them, not what it wrote
    assert differences(whole, stage, ignore=("hits", "generated")) == []


@pytest.mark.slow
def test_stage03_killed_mid_training_retrains_to_the_same_model_and_prompts(smoke_stage, tmp_path):
    chain, _, _ = smoke_stage("02_refine")
    seen = {}

    def mid_training(stage_dir: Path) -> bool:
        state = training(stage_dir.parent)
        seen.update(state or {})
        return bool(state and state["done"] >= 1)

    whole, stage, _ = kill_and_resume(chain, tmp_path, "03_sft", mid_training, SETS_03)
    assert 1 <= seen["done"] < seen["total"]  # killed between two training steps, before the model was saved
    assert (whole / "heldout_prompts.jsonl").read_bytes() == (stage / "heldout_prompts.jsonl").read_bytes()
    assert differences(whole, stage) == []  # held-out prompts; metrics.json without timing
    weights = files(whole / "model", "*.safetensors")
    assert weights and all(
        (whole / "model" / w).read_bytes() == (stage / "model" / w).read_bytes() for w in weights
    )


@pytest.mark.slow
def test_stage05_killed_in_a_later_training_resumes_to_the_same_pairs_and_prompts(smoke_stage, tmp_path):
    """Killed while it trains a model after the first one is saved (a later preference round, or an ablation):
    the saved models are reused, the killed training runs again, and every file it writes (held-out prompts of
    each model, each round's samples, scores and pairs) is the uninterrupted run's."""
    chain, _, _ = smoke_stage("04_feedback")

    def later_training(stage_dir: Path) -> bool:
        return bool(training(stage_dir.parent)) and any(stage_dir.rglob("train_info.json"))

    whole, stage, _ = kill_and_resume(chain, tmp_path, "05_dpo", later_training)
    prompts = files(whole, "heldout_prompts*.jsonl")
    assert prompts and files(stage, "heldout_prompts*.jsonl") == prompts
    assert differences(whole, stage) == []  # every JSONL byte for byte; metrics.json without timing
