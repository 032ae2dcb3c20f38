"""Run directories: outputs/<run>/<NN_stage>/ with params, metrics.json, artifacts, and a manifest."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import yaml

from vpolib.config import Config, load_config
from vpolib.paths import OUTPUT_DIR, REPO_ROOT, resolve

TRACKED_PACKAGES = (
    "torch",
    "transformers",
    "trl",
    "peft",
    "diffusers",
    "datasets",
    "accelerate",
    "papermill",
)


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (when installed)."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - numpy/torch are dependencies
        pass


def versions() -> dict[str, str | None]:
    out = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def write_json(path: Path, obj) -> None:
    """Write JSON atomically (a killed run never leaves half a file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def update_manifest(run_dir: Path, stage: str | None = None, **fields) -> dict:
    """Merge ``fields`` into run_dir/manifest.json (into ``stages[stage]`` when a stage is given)."""
    path = Path(run_dir) / "manifest.json"
    manifest = json.loads(path.read_text()) if path.exists() else {"stages": {}}
    if stage is None:
        manifest.update(fields)
    else:
        manifest.setdefault("stages", {}).setdefault(stage, {}).update(fields)
    write_json(path, manifest)
    return manifest


def default_run_dir(profile: str) -> Path:
    return OUTPUT_DIR / f"{profile}-dev"


@dataclass
class Stage:
    """One stage of one run: its config and its folder. Notebooks get one from :func:`start_stage`."""

    name: str
    cfg: Config
    run_dir: Path
    dir: Path

    def path(self, *parts: str) -> Path:
        """A path inside this stage's folder (parent folders are created)."""
        p = self.dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def input(self, stage_prefix: str, *parts: str) -> Path:
        """A file an earlier stage wrote, e.g. ``input("01", "splits", "sft_pool.jsonl")``."""
        matches = sorted(self.run_dir.glob(f"{stage_prefix}_*"))
        if not matches:
            raise FileNotFoundError(
                f"stage {stage_prefix} has not run in {self.run_dir}: run "
                f"`python -m vpolib run --run-dir {self.run_dir} --from {stage_prefix}` first"
            )
        p = matches[0].joinpath(*parts)
        if not p.exists():
            raise FileNotFoundError(f"{p} is missing: re-run stage {stage_prefix}")
        return p

    def finish(self, metrics: dict, artifacts: list[str | Path]) -> dict:
        """Write metrics.json and check every artifact exists (papermill runs can "succeed" silently)."""
        missing = [str(a) for a in artifacts if not (self.dir / a).exists()]
        if missing:
            raise AssertionError(f"stage {self.name} did not write: {missing}")
        empty = [str(a) for a in artifacts if (self.dir / a).is_file() and (self.dir / a).stat().st_size == 0]
        if empty:
            raise AssertionError(f"stage {self.name} wrote empty files: {empty}")
        write_json(self.dir / "metrics.json", metrics)
        update_manifest(
            self.run_dir,
            self.name,
            metrics_file=str(self.dir / "metrics.json"),
            artifacts=[str(a) for a in artifacts],
        )
        return metrics


def start_stage(name: str, profile: str = "cpu", run_dir: str = "", overrides: dict | None = None) -> Stage:
    """Load the config, create outputs/<run>/<name>/, write params.yaml, seed everything."""
    cfg = load_config(profile, overrides)
    root = resolve(run_dir) if run_dir else default_run_dir(profile)
    stage_dir = root / name
    stage_dir.mkdir(parents=True, exist_ok=True)
    params = {"stage": name, "profile": profile, "run_dir": str(root), "overrides": overrides or {}}
    (stage_dir / "params.yaml").write_text(
        yaml.safe_dump({**params, "config": cfg.to_dict()}, sort_keys=False)
    )
    manifest_path = root / "manifest.json"
    if not manifest_path.exists():
        update_manifest(root, run_id=root.name, created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    update_manifest(root, profile=profile, seed=cfg.seed, git_commit=git_commit(), versions=versions())
    update_manifest(
        root,
        name,
        overrides=overrides or {},
        config=cfg.to_dict(),
        started=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    set_seed(cfg.seed)
    import torch

    torch.set_num_threads(cfg.torch_threads or len(os.sched_getaffinity(0)))
    return Stage(name=name, cfg=cfg, run_dir=root, dir=stage_dir)
