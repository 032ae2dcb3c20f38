"""`python -m vpolib plan`: every job with its command, GPUs and GPU-hours; measured counts; nothing run."""

import subprocess
import sys

import pytest

from vpolib.paths import REPO_ROOT
from vpolib.plan import build_plan, format_plan


@pytest.fixture(scope="module")
def full():
    return build_plan("full")


def test_counts_are_measured_from_the_data_in_the_repo(full):
    _, counts = full
    assert counts["sft_queries"] == 11640 and counts["vbench_prompts"] == 946
    assert counts["dpo_queries"] == 9956 - 500  # the held-out set is carved from the DPO pool


def test_jobs_costs_and_commands(full):
    jobs, _ = full

    def job(prefix):
        return next(j for j in jobs if j.name.startswith(prefix))

    assert [j.stage for j in jobs] == sorted(j.stage for j in jobs) and {j.stage for j in jobs} == {
        "01",
        "02",
        "03",
        "04",
        "05",
        "06",
        "08",
    }
    sft = job("SFT Llama-3-8B")
    assert (
        sft.gpus == 8
        and "accelerate launch --config_file configs/accelerate/zero3.yaml -m vpolib.train sft" in sft.command
    )
    assert sft.items == 11640 * 5  # five epochs
    render = job("render")
    assert render.items == 9456 * 4 and render.gpu_s_per_item == 90.0 and "model card" in render.basis
    assert job("DPO").gpus == 8 and job("DPO").items == 9456 * 3  # main pairs + text and video ablations
    assert all("assumption" in j.basis or j.gpu_s_per_item == 0 for j in jobs)  # nothing measured on a GPU
    # the 2B model is half the 5B's per-video cost (model cards: 45 vs 90 s on an H100)
    small, _ = build_plan("full", {"video.cogvideox_model": "THUDM/CogVideoX-2b"})
    assert [j.gpu_hours for j in small if j.item == "video"] == pytest.approx(
        [
            j.gpu_hours / 2 if "render" in j.name or "VBench" in j.name else j.gpu_hours
            for j in jobs
            if j.item == "video"
        ]
    )


def test_cli_prints_the_table_without_running_anything(full, tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "vpolib", "plan", "--profile", "full"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    jobs, counts = full
    assert res.stdout.strip() == format_plan(jobs, counts, "full").strip()
    total = sum(j.gpu_hours for j in jobs)
    assert f"{total:.1f}" in res.stdout.splitlines()[len(jobs) + 5]  # the totals row under the table
    assert "nothing is run" in res.stdout and "GPU-h" in res.stdout
    assert not list(tmp_path.iterdir())  # no run dir, no files
