"""What two runs (or two runs of one stage) wrote, compared: every JSONL file byte for byte, every metrics.json
as JSON without its timing (wall-clock seconds, throughput, start and end times) and without how the run got
there (``reused``: a model trained before a kill is reused by the resumed run).

Shared by test_resume.py (a killed and resumed stage against an uninterrupted one) and test_reproducible.py
(two whole runs of a profile).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

# Keys whose values are measured on the clock: "seconds", "train_s", "s_per_step", "generation_s", "timing_s",
# "train_runtime", "train_samples_per_second", "started", "finished", "created", "time", "elapsed", ...
TIMING = re.compile(
    r"(^|_)(s|seconds|time|runtime|elapsed|started|finished|created|timing|timing_s)$"
    r"|(^|_)(s_per|per_second|per_s)(_|$)|^(timing|wall)"
)
HISTORY = {"reused"}  # how the run got there, not what it wrote


def without_timing(obj, ignore: tuple[str, ...] = ()):
    """``obj`` (parsed JSON) with every timing key, the run-history keys of :data:`HISTORY` and the keys in
    ``ignore`` dropped, at any depth."""
    if isinstance(obj, dict):
        return {
            k: without_timing(v, ignore)
            for k, v in obj.items()
            if not (isinstance(k, str) and (TIMING.search(k) or k in HISTORY or k in ignore))
        }
    if isinstance(obj, list):
        return [without_timing(v, ignore) for v in obj]
    return obj


def files(root: Path, pattern: str) -> list[str]:
    """The files under ``root`` matching ``pattern`` (e.g. ``*.jsonl``), as sorted relative paths."""
    return sorted(p.relative_to(root).as_posix() for p in Path(root).rglob(pattern) if p.is_file())


def differences(
    a: Path, b: Path, jsonl: str = "*.jsonl", skip: tuple[str, ...] = (), ignore: tuple[str, ...] = ()
) -> list[str]:
    """What differs between two run dirs (or two stage dirs): JSONL files (``jsonl``: which, a glob) missing on
    one side or not byte-identical, and metrics.json files that differ once timing (and the keys in ``ignore``)
    is dropped. ``skip``: relative paths left out. Empty when the two wrote the same."""
    a, b = Path(a), Path(b)
    out = []
    for pattern, same in (
        (jsonl, lambda x, y: x.read_bytes() == y.read_bytes()),
        ("metrics.json", lambda x, y: metrics(x, ignore, a) == metrics(y, ignore, b)),
    ):
        for name in sorted(set(files(a, pattern)) | set(files(b, pattern))):
            if name in skip:
                continue
            x, y = a / name, b / name
            if not (x.exists() and y.exists()):
                out.append(f"{name}: only in {a if x.exists() else b}")
            elif not same(x, y):
                if pattern == jsonl:
                    why = f" (first at line {first_line(x, y)})"
                else:
                    why = f" ({first_difference(x, y, ignore, (a, b))})"
                out.append(f"{name}: differs{why}")
    return out


def first_line(x: Path, y: Path) -> int:
    """The first line (1-based) where two files differ."""
    u, v = x.read_bytes().splitlines(), y.read_bytes().splitlines()
    return next((i for i, (p, q) in enumerate(zip(u, v, strict=False), 1) if p != q), min(len(u), len(v)) + 1)


def metrics(path: Path, ignore: tuple[str, ...] = (), root: Path | None = None):
    """A metrics.json without timing (:func:`without_timing`); paths inside ``root`` (a run or stage dir: some
    metrics name a model's dir) written relative to it, as ``<dir>/...``."""
    text = Path(path).read_text()
    if root is not None:
        for r in sorted({str(Path(root).resolve()), str(root)}, key=len, reverse=True):
            text = text.replace(json.dumps(r)[1:-1], "<dir>")
    return without_timing(json.loads(text), ignore)


def first_difference(x: Path, y: Path, ignore: tuple[str, ...] = (), roots: tuple = (None, None)) -> str:
    """Where two metrics.json files first differ (without timing), for the failure message."""

    def walk(u, v, at):
        if isinstance(u, dict) and isinstance(v, dict):
            for k in sorted(set(u) | set(v), key=str):
                if k not in u or k not in v:
                    return f"{at}.{k}: only on one side"
                found = walk(u[k], v[k], f"{at}.{k}")
                if found:
                    return found
            return None
        if isinstance(u, list) and isinstance(v, list) and len(u) == len(v):
            return next(
                (f for i, (p, q) in enumerate(zip(u, v, strict=True)) if (f := walk(p, q, f"{at}[{i}]"))),
                None,
            )
        return None if u == v else f"{at}: {u!r} != {v!r}"

    return walk(metrics(x, ignore, roots[0]), metrics(y, ignore, roots[1]), "") or "?"
