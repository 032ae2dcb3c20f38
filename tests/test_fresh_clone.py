"""The repository alone is enough: stage 01 runs from a copy of the repo with nothing beside it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from vpolib.paths import REPO_ROOT

pytestmark = pytest.mark.notebook


def test_stage_01_from_a_clone_with_no_sibling_folders(tmp_path):
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    clone = tmp_path / "alone" / "repo"
    for rel in files:
        if (REPO_ROOT / rel).is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / rel, clone / rel)
    assert sorted(p.name for p in clone.parent.iterdir()) == ["repo"]  # no ../shared, no ../data
    env = {k: v for k, v in os.environ.items() if k != "VPO_DATA_DIR"}
    env["PYTHONPATH"] = str(clone)
    run_dir = tmp_path / "run"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "vpolib",
            "run",
            "--profile",
            "smoke",
            "--to",
            "01",
            "--run-dir",
            str(run_dir),
            "--no-progress",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    metrics = json.loads((run_dir / "01_data" / "metrics.json").read_text())
    assert metrics["read"] == {"sft": 400, "dpo": 400}  # the smoke profile's limit, from the clone's data/
    params = (run_dir / "01_data" / "params.yaml").read_text()
    assert "root: data" in params
