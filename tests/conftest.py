"""Shared fixtures. Tests never touch a model hub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """Run every notebook in order on the smoke profile into one temp run dir (once per session).

    Returns ``(run_dir, exit_code)``; per-stage tests read run_dir/<stage>/metrics.json.

    ``VPO_SMOKE_RUN=<run dir>``: a finished smoke run made earlier with this tree (``python -m vpolib run --profile
    smoke --run-dir DIR``) is used instead, e.g. to rerun one slow test without the chain; tests only read it.
    """
    from vpolib.run import run

    reuse = os.environ.get("VPO_SMOKE_RUN")
    if reuse:
        return Path(reuse).resolve(), 0
    run_dir = tmp_path_factory.mktemp("smoke-run")
    code = run("smoke", None, None, run_dir, overrides={}, progress=False)
    return run_dir, code


@pytest.fixture(scope="session")
def smoke_stage(smoke_run):
    """``smoke_stage("03_sft") -> (run_dir, stage_dir, metrics)``; fails clearly if that stage did not finish."""
    import json

    run_dir, _ = smoke_run

    def get(name: str):
        stage = run_dir / name
        manifest = json.loads((run_dir / "manifest.json").read_text())
        status = manifest.get("stages", {}).get(name, {}).get("status")
        assert status == "ok", (
            f"stage {name} is {status or 'not run'} in the smoke chain: see {stage / (name + '.ipynb')}"
        )
        return run_dir, stage, json.loads((stage / "metrics.json").read_text())

    return get


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """The tiny Llama saved to its own dir (trainers reload references from a model's path)."""
    from vpolib.models import load_causal_lm

    model, tok = load_causal_lm("tiny-llama")
    path = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
