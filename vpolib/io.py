"""JSON and JSONL in and out. Readers count and keep malformed lines instead of crashing; writers never leave half a
file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path


def read_jsonl(path: str | os.PathLike) -> tuple[list[dict], list[dict]]:
    """Return ``(records, errors)``; each error is ``{"line": n, "reason": ..., "text": ...}``."""
    records, errors = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                errors.append({"line": n, "reason": f"invalid JSON: {err.msg}", "text": line[:200]})
                continue
            if not isinstance(obj, dict):
                errors.append(
                    {"line": n, "reason": f"not an object: {type(obj).__name__}", "text": line[:200]}
                )
                continue
            records.append(obj)
    return records, errors


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> Path:
    """Write all records atomically (to a temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one record and flush it, so a killed run keeps everything finished so far.

    A kill mid-write leaves a last line without its newline: end it first, so the new record is not
    glued onto it (the broken line is then counted as bad by :func:`read_jsonl`, never lost work).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab+") as f:
        f.seek(0, os.SEEK_END)
        if f.tell():
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def done_keys(path: str | os.PathLike, key: str) -> set:
    """The ``key`` values already present in a (possibly partial) JSONL file, for resuming."""
    if not Path(path).exists():
        return set()
    records, _ = read_jsonl(path)
    return {r[key] for r in records if key in r}


def write_json(path: str | os.PathLike, obj) -> None:
    """Write JSON atomically (a killed run never leaves half a file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def read_json(path: str | os.PathLike):
    """The JSON value stored in ``path`` (as :func:`write_json` writes it)."""
    return json.loads(Path(path).read_text())
