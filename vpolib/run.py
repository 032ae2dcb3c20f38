"""A run: its folder ``outputs/<run>/<NN_stage>/`` (params, metrics.json, artifacts, a manifest) and the
headless runner that executes the numbered notebooks into it with papermill.

    python -m vpolib run --profile cpu [--from 01 --to 06] [--run-dir DIR] [--set data.limit=100]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import yaml

from vpolib.config import Config, load_config
from vpolib.io import write_json
from vpolib.paths import NOTEBOOK_DIR, OUTPUT_DIR, REPO_ROOT, resolve
from vpolib.profiles import ConfigError
from vpolib.progress import ENV as PROGRESS_ENV
from vpolib.progress import KERNEL_ARGS, read_progress
from vpolib.verify import verify

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
    update_manifest(
        root,
        profile=profile,
        seed=cfg.seed,
        git_commit=git_commit(),
        versions=versions(),
        precision=cfg.precision,
    )
    set_seed(cfg.seed)
    import torch

    torch.set_num_threads(cfg.torch_threads or len(os.sched_getaffinity(0)))
    # Per stage, as a resumed run may start a stage on another machine or with another environment.
    update_manifest(
        root,
        name,
        overrides=overrides or {},
        config=cfg.to_dict(),
        started=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        dtype=cfg.precision["dtype"],
        torch_threads=torch.get_num_threads(),
        pythonhashseed=os.environ.get("PYTHONHASHSEED"),  # None: hashes (set order) vary per process
    )
    return Stage(name=name, cfg=cfg, run_dir=root, dir=stage_dir)


def discover_notebooks(notebook_dir: Path = NOTEBOOK_DIR) -> dict[str, Path]:
    """``{"01": notebooks/01_data.ipynb, ...}`` for every ``NN_name.ipynb``."""
    found = {}
    for nb in sorted(Path(notebook_dir).glob("[0-9][0-9]_*.ipynb")):
        found[nb.name[:2]] = nb
    return found


def select(notebooks: dict[str, Path], start: str | None, stop: str | None) -> list[Path]:
    keys = sorted(notebooks)
    start = (start or keys[0]).zfill(2)
    stop = (stop or keys[-1]).zfill(2)
    chosen = [notebooks[k] for k in keys if start <= k <= stop]
    if not chosen:
        raise SystemExit(f"no notebooks between {start} and {stop}; have {keys}")
    return chosen


def committed_reference(profile: str, run_dir: Path, root: Path = REPO_ROOT) -> Path | None:
    """``docs/results/<profile>`` when it holds a committed reference run (its results.json) and ``run_dir``
    finished stage 06: what a finished run is verified against. A folder with other files only (quick's dtype
    comparison) is no reference."""
    reference = Path(root) / "docs" / "results" / profile
    finished = (Path(run_dir) / "06_evaluate" / "results.json").exists()
    return reference if finished and (reference / "results.json").exists() else None


def parse_sets(items: list[str]) -> dict:
    """``["data.limit=100", "seed=1"]`` -> ``{"data.limit": 100, "seed": 1}`` (values parsed as YAML)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        parsed = yaml.safe_load(value)
        if isinstance(parsed, str) and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+", parsed.strip()):
            parsed = float(parsed)  # YAML 1.1 reads "1e-3" (no dot) as a string
        out[key.strip()] = parsed
    return out


def run_notebook(nb: Path, run_dir: Path, profile: str, overrides: dict, progress: bool = False) -> Path:
    """Execute one notebook into run_dir/<stem>/<stem>.ipynb; raises papermill's error on failure.

    ``progress``: papermill's per-cell bar (the runner shows its own line instead, see :class:`StageLine`).
    """
    import papermill as pm

    stage_dir = run_dir / nb.stem
    stage_dir.mkdir(parents=True, exist_ok=True)
    out = stage_dir / nb.name
    pm.execute_notebook(
        str(nb),
        str(out),
        parameters={"profile": profile, "run_dir": str(run_dir), "overrides": overrides},
        cwd=str(stage_dir),
        progress_bar=progress,
        log_output=False,
        extra_arguments=KERNEL_ARGS,
    )
    return out


def clock(seconds: float | None) -> str:
    """``75.2`` -> ``"1:15"``, ``3725`` -> ``"1:02:05"``."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def status_line(prefix: str, elapsed: float, state: dict | None) -> str:
    """``[3/6] 03_sft · SFT steps 12/63 · 2:10 elapsed · ETA 5:30`` (the stage's elapsed time; the loop's ETA)."""
    parts = [prefix]
    if state and state.get("desc"):
        total = state.get("total")
        parts.append(
            f"{state['desc']} {state.get('done', 0)}/{total}"
            if total
            else f"{state['desc']} {state.get('done', 0)}"
        )
    if state and state.get("closed") and state.get("desc"):
        parts[-1] += " done"
    parts.append(f"{clock(elapsed)} elapsed")
    if (
        state
        and not state.get("closed")
        and state.get("eta") is not None
        and state.get("done") != state.get("total")
    ):
        parts.append(f"ETA {clock(state['eta'])}")
    return " · ".join(parts)


class StageLine:
    """While a stage runs, a thread polls the progress file and rewrites one line (``\r``) on ``stream``.

    On a terminal it updates every ``interval`` seconds; otherwise (a log file) every ``log_interval``
    seconds or when the loop changes, so logs do not fill up.
    """

    def __init__(
        self, prefix: str, progress_path: Path, stream=None, interval: float = 0.5, log_interval: float = 10.0
    ):
        self.prefix, self.path, self.stream = prefix, progress_path, stream or sys.stdout
        tty = getattr(self.stream, "isatty", lambda: False)()
        self.interval = interval
        self.min_gap = 0.0 if tty else log_interval
        self.width = max(shutil.get_terminal_size((120, 20)).columns - 1, 40) if tty else 200
        self.start = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"progress {prefix}", daemon=True)
        self._last, self._last_desc, self._last_time, self._shown = "", None, 0.0, 0

    def __enter__(self):
        self.path.unlink(missing_ok=True)
        self.show(force=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.path.unlink(missing_ok=True)

    def show(self, force: bool = False) -> None:
        state = read_progress(self.path)
        line = status_line(self.prefix, time.perf_counter() - self.start, state)[: self.width]
        desc = (state or {}).get("desc")
        now = time.perf_counter()
        if (
            line == self._last
            or not force
            and desc == self._last_desc
            and now - self._last_time < self.min_gap
        ):
            return
        pad = " " * max(self._shown - len(line), 0)
        self.stream.write(f"\r{line}{pad}")
        self.stream.flush()
        self._last, self._last_desc, self._last_time, self._shown = line, desc, now, len(line)

    def finish(self, text: str) -> None:
        """End the line with ``text`` (and a newline)."""
        pad = " " * max(self._shown - len(text), 0)
        self.stream.write(f"\r{text}{pad}\n")
        self.stream.flush()
        self._shown = 0

    def _loop(self):
        while not self._stop.wait(self.interval):
            self.show()


@contextmanager
def _environment(progress_path: Path):
    """Kernels inherit these: progress goes to the file, tqdm bars stay out of executed notebooks."""
    quiet = {
        PROGRESS_ENV: str(progress_path),
        "TQDM_DISABLE": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    }
    saved = {k: os.environ.get(k) for k in [*quiet, "TQDM_MININTERVAL"]}
    os.environ.update(quiet)
    os.environ.setdefault("TQDM_MININTERVAL", "15")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run(
    profile: str,
    start: str | None,
    stop: str | None,
    run_dir: Path,
    overrides: dict,
    notebook_dir: Path = NOTEBOOK_DIR,
    progress: bool = True,
) -> int:
    """Run the selected stages in order; stop at the first failure. Returns an exit code.

    ``progress``: one updating line per stage (what it is doing, elapsed, ETA); otherwise one line at
    the start and one at the end of each stage.
    """
    from papermill.exceptions import PapermillExecutionError

    load_config(profile, overrides)  # fail fast on a bad profile or override, before any kernel starts
    notebooks = select(discover_notebooks(notebook_dir), start, stop)
    run_dir.mkdir(parents=True, exist_ok=True)
    progress_path = run_dir / "progress.json"
    print(f"run dir: {run_dir}\nprofile: {profile}  stages: {', '.join(nb.stem for nb in notebooks)}")
    total = time.perf_counter()
    with _environment(progress_path):
        for i, nb in enumerate(notebooks, 1):
            prefix = f"[{i}/{len(notebooks)}] {nb.stem}"
            line = StageLine(prefix, progress_path) if progress else None
            if line is None:
                print(f"{prefix} ...", flush=True)
            t0 = time.perf_counter()
            try:
                if line is not None:
                    with line:
                        out = run_notebook(nb, run_dir, profile, overrides)
                else:
                    out = run_notebook(nb, run_dir, profile, overrides)
            except PapermillExecutionError as err:
                seconds = round(time.perf_counter() - t0, 1)
                if line is not None:
                    line.finish(f"{prefix} FAILED after {seconds:.1f} s")
                failed = run_dir / nb.stem / nb.name
                update_manifest(run_dir, nb.stem, status="failed", seconds=seconds, notebook=str(failed))
                print(
                    f"\nFAILED: {nb.stem} (cell {err.exec_count}): {err.ename}: {err.evalue}", file=sys.stderr
                )
                print(f"executed notebook: {failed}", file=sys.stderr)
                return 1
            seconds = round(time.perf_counter() - t0, 1)
            update_manifest(
                run_dir,
                nb.stem,
                status="ok",
                seconds=seconds,
                notebook=str(out),
                finished=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            )
            if line is not None:
                line.finish(f"{prefix} · ok in {seconds:.1f} s -> {out}")
            else:
                print(f"    ok in {seconds:.1f} s -> {out}", flush=True)
    total = round(time.perf_counter() - total, 1)
    # LoRA runs save adapters: the run dir's size is worth watching. Imported here: checkpoints loads transformers,
    # which the runner itself (it only starts the notebooks' kernels) never needs otherwise.
    from vpolib.checkpoints import dir_size

    size = dir_size(run_dir)
    update_manifest(run_dir, total_seconds=total, size_bytes=size)
    print(f"done in {total:.1f} s; run dir {size / 1e6:.1f} MB; manifest: {run_dir / 'manifest.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vpolib", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="execute the notebooks headlessly with papermill")
    p.add_argument("--profile", default="cpu", help="configs/<profile>.yaml (cpu, smoke, full)")
    p.add_argument("--from", dest="start", help="first stage number, e.g. 01")
    p.add_argument("--to", dest="stop", help="last stage number, e.g. 06")
    p.add_argument(
        "--run-dir", help="run folder (default outputs/<profile>-<timestamp>); reuse one to resume"
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no updating progress line (one line per stage start and end)",
    )
    sub.add_parser("stages", help="list the notebooks")
    args = parser.parse_args(argv)

    if args.command == "stages":
        for key, nb in discover_notebooks().items():
            print(key, nb.name)
        return 0
    overrides = parse_sets(args.set)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = resolve(args.run_dir) if args.run_dir else OUTPUT_DIR / f"{args.profile}-{stamp}"
    try:
        code = run(args.profile, args.start, args.stop, run_dir, overrides, progress=not args.no_progress)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    reference = committed_reference(args.profile, run_dir) if code == 0 and not overrides else None
    if reference is not None:
        print(f"\nverify against {reference.relative_to(REPO_ROOT)} (python -m vpolib verify {run_dir}):")
        print(verify(run_dir, reference)[1])
    return code
