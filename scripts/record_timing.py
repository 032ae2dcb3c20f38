"""Keep a finished run's per-stage wall time, with the processor and dtype it ran on, for the README's table.

    .venv/bin/python scripts/record_timing.py outputs/<run>     # -> docs/results/<profile>/timings/<run id>.json

One file per run; `scripts/results_table.py` writes one README row per file (the timings per processor of the
speed issue). Record only runs made in one pass on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timing_record(manifest: dict) -> dict:
    """The manifest's run id, commit, processor, dtype, threads and seconds per stage."""
    precision = manifest.get("precision") or {}
    stages = manifest.get("stages", {})
    return {
        "run_id": manifest["run_id"],
        "git_commit": manifest.get("git_commit"),
        "created": manifest.get("created"),
        "profile": manifest["profile"],
        "cpu": precision.get("cpu"),
        "dtype": precision.get("dtype"),
        "torch_threads": next(
            (s.get("torch_threads") for s in stages.values() if s.get("torch_threads")), None
        ),
        "seconds": {name: stage.get("seconds") for name, stage in sorted(stages.items())},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    args = ap.parse_args()
    path = args.run_dir / "manifest.json"
    if not path.exists():
        raise SystemExit(f"{path}: no manifest (is {args.run_dir} a run dir?)")
    record = timing_record(json.loads(path.read_text()))
    missing = [name for name, s in record["seconds"].items() if s is None]
    if missing:
        raise SystemExit(f"{args.run_dir}: stages {missing} have no time (not finished)")
    out = REPO / "docs" / "results" / record["profile"] / "timings" / f"{record['run_id']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
