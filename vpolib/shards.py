"""Sharded jobs: one process per device, each logging to its own file, rank 0 merging the logs once all are done.

The full profile renders (``python -m vpolib.video render``) and scores (``python -m vpolib.visionreward``) this
way. Shard i of n takes every n-th item and logs one record per video key, so a job is resumable per video, and a
video logged twice (a re-run with another shard count) is merged once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vpolib.io import read_jsonl


def shard_file(out_dir: Path, kind: str, shard: int, num_shards: int) -> Path:
    """The log one process writes (``shards/<kind>-<i>-of-<n>.jsonl``): shards never share a file."""
    return Path(out_dir) / "shards" / f"{kind}-{shard:02d}-of-{num_shards:02d}.jsonl"


def read_shards(out_dir: Path, kind: str) -> list[dict]:
    """Every shard's ``kind`` records, one per video key (the first logged), sorted by (query id, k)."""
    merged: dict[str, dict] = {}
    for log in sorted((Path(out_dir) / "shards").glob(f"{kind}-*.jsonl")):
        for rec in read_jsonl(log)[0]:
            merged.setdefault(rec["key"], rec)
    return sorted(merged.values(), key=lambda r: (r["id"], r["k"]))


def finish(state, log: Path, merge: Callable[[], list], what: str, into: Path) -> int:
    """A shard's end: report its log, wait for every process (``state``: accelerate's ``PartialState``), and on
    rank 0 ``merge()`` the shards into ``into``, reporting how many ``what`` it holds. Returns the exit code."""
    print(f"shard {state.process_index}/{state.num_processes}: {log}", flush=True)
    state.wait_for_everyone()
    if state.is_main_process:
        print(f"merged {len(merge())} {what} into {into}", flush=True)
    return 0
