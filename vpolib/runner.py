"""Headless runner: executes the numbered notebooks with papermill into a run directory.

    python -m vpolib run --profile cpu [--from 01 --to 06] [--run-dir DIR] [--set data.limit=100]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

import yaml

from vpolib.config import ConfigError, load_config
from vpolib.paths import NOTEBOOK_DIR, OUTPUT_DIR, resolve
from vpolib.runs import update_manifest


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


def parse_sets(items: list[str]) -> dict:
    """``["data.limit=100", "seed=1"]`` -> ``{"data.limit": 100, "seed": 1}`` (values parsed as YAML)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def run_notebook(nb: Path, run_dir: Path, profile: str, overrides: dict, progress: bool = True) -> Path:
    """Execute one notebook into run_dir/<stem>/<stem>.ipynb; raises papermill's error on failure."""
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
    )
    return out


def run(profile: str, start: str | None, stop: str | None, run_dir: Path, overrides: dict,
        notebook_dir: Path = NOTEBOOK_DIR, progress: bool = True) -> int:
    """Run the selected stages in order; stop at the first failure. Returns an exit code."""
    from papermill.exceptions import PapermillExecutionError

    load_config(profile, overrides)  # fail fast on a bad profile or override, before any kernel starts
    notebooks = select(discover_notebooks(notebook_dir), start, stop)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Headless progress bars: update rarely so executed notebooks stay small.
    os.environ.setdefault("TQDM_MININTERVAL", "15")
    print(f"run dir: {run_dir}\nprofile: {profile}  stages: {', '.join(nb.stem for nb in notebooks)}")
    total = time.perf_counter()
    for i, nb in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {nb.stem} ...", flush=True)
        t0 = time.perf_counter()
        try:
            out = run_notebook(nb, run_dir, profile, overrides, progress)
        except PapermillExecutionError as err:
            seconds = round(time.perf_counter() - t0, 1)
            failed = run_dir / nb.stem / nb.name
            update_manifest(run_dir, nb.stem, status="failed", seconds=seconds, notebook=str(failed))
            print(f"\nFAILED: {nb.stem} (cell {err.exec_count}): {err.ename}: {err.evalue}", file=sys.stderr)
            print(f"executed notebook: {failed}", file=sys.stderr)
            return 1
        seconds = round(time.perf_counter() - t0, 1)
        update_manifest(run_dir, nb.stem, status="ok", seconds=seconds, notebook=str(out),
                        finished=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
        print(f"    ok in {seconds:.1f} s -> {out}", flush=True)
    total = round(time.perf_counter() - total, 1)
    from vpolib.optimizer import dir_size  # LoRA runs save adapters: the run dir's size is worth watching

    size = dir_size(run_dir)
    update_manifest(run_dir, total_seconds=total, size_bytes=size)
    print(f"done in {total:.1f} s; run dir {size / 1e6:.1f} MB; manifest: {run_dir / 'manifest.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vpolib", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="execute the notebooks headlessly with papermill")
    p.add_argument("--profile", default="cpu", help="configs/<profile>.yaml (cpu, smoke, full)")
    p.add_argument("--from", dest="start", help="first stage number, e.g. 01")
    p.add_argument("--to", dest="stop", help="last stage number, e.g. 06")
    p.add_argument("--run-dir", help="run folder (default outputs/<profile>-<timestamp>); reuse one to resume")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
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
        return run(args.profile, args.start, args.stop, run_dir, overrides, progress=not args.no_progress)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
