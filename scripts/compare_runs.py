"""Did two runs write the same thing? Stage by stage (matched by number, so 06_analysis of an older run meets
06_evaluate of a newer one): JSONL files byte for byte, metrics.json without timing, and 06's results.json compared
without its row order and run history (07's beyond.json against an older run's results["beyond"]).

    .venv/bin/python scripts/compare_runs.py outputs/cpu-R outputs/cpu-D

Exits 1 when a figure of results.json differs; byte differences in JSONL files are listed, not fatal (a row judged
in another batch can move a probability in its last digits while every verdict stays).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vpolib.paths import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tests"))
from artifacts import differences, without_timing  # noqa: E402  (the tests' comparison, one definition)

HISTORY = ("date", "run_id", "git_commit", "timings", "notes", "beyond", "counts")


def unordered(x):
    """``x`` with every list sorted, so that rows written in another order compare equal."""
    if isinstance(x, dict):
        return {k: unordered(v) for k, v in x.items()}
    if isinstance(x, list):
        return sorted((unordered(v) for v in x), key=lambda v: json.dumps(v, sort_keys=True))
    return x


def stage_dirs(run: Path) -> dict[str, Path]:
    return {p.name[:2]: p for p in sorted(run.glob("[0-9][0-9]_*")) if p.is_dir()}


def results_of(run: Path) -> dict:
    path = next(run.glob("06_*/results.json"))
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("new", type=Path)
    ap.add_argument("old", type=Path)
    args = ap.parse_args(argv)
    new, old = stage_dirs(args.new), stage_dirs(args.old)
    for num in sorted(set(new) & set(old)):
        found = differences(new[num], old[num], skip=("metrics.json",) if num >= "06" else ())
        n = len(list(new[num].rglob("*.jsonl")))
        print(f"{new[num].name} vs {old[num].name}: {n} JSONL files, {len(found)} differences")
        for line in found:
            print("   ", line)
    a, b = results_of(args.new), results_of(args.old)
    same = unordered(without_timing({k: v for k, v in a.items() if k not in HISTORY})) == unordered(
        without_timing({k: v for k, v in b.items() if k not in HISTORY})
    )
    print(
        f"results.json without {', '.join(HISTORY)}, rows in any order: {'identical' if same else 'DIFFERENT'}"
    )
    beyond_new = args.new / "07_beyond" / "beyond.json"
    if beyond_new.exists() and "beyond" in b:
        equal = unordered(without_timing(json.loads(beyond_new.read_text()))) == unordered(
            without_timing(b["beyond"])
        )
        print(f"07 beyond.json vs the older run's results['beyond']: {'identical' if equal else 'DIFFERENT'}")
        same = same and equal
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
