"""Shared fixtures. Tests never touch a model hub."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """Run every notebook in order on the smoke profile into one temp run dir (once per session).

    Returns ``(run_dir, exit_code)``; per-stage tests read run_dir/<stage>/metrics.json.
    """
    from vpolib.runner import run

    run_dir = tmp_path_factory.mktemp("smoke-run")
    code = run("smoke", None, None, run_dir, overrides={}, progress=False)
    return run_dir, code


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """The tiny Llama saved to its own dir (trainers reload references from a model's path)."""
    from vpolib.models import load_causal_lm

    model, tok = load_causal_lm("tiny-llama")
    path = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
