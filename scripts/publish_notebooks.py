"""Publish a run's executed notebooks (outputs/notebooks/, to publish outside the repo: notebooks are committed stripped), so a reader on a code host sees every figure, table and a
few videos without running anything.

    .venv/bin/python scripts/publish_notebooks.py outputs/cpu-R     # or: make notebooks RUN=outputs/cpu-R

Each stage's executed copy (``RUN/NN_stage/NN_stage.ipynb``) is copied as it ran, with two changes that keep the
folder small: widget state is dropped (a code host cannot run widgets; the static fallbacks stay), and an output
larger than ``--max-output-kb`` (a long run of GIFs) is replaced by a one-line note saying what was left out and
where it is in the run dir. The notebook's own sizes are printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nbformat

from vpolib.paths import REPO_ROOT


def output_size(output) -> int:
    """Bytes of one cell output as JSON."""
    return len(json.dumps(output))


def shrink(nb, max_bytes: int, source: str) -> int:
    """Drop widget state and replace every output over ``max_bytes`` by a note; returns how many were replaced."""
    nb.metadata.pop("widgets", None)
    replaced = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            data.pop("application/vnd.jupyter.widget-view+json", None)
            if output_size(out) > max_bytes:
                replaced += 1
                note = f"[output of {output_size(out) / 1e3:.0f} kB left out of the published copy: cell {i} of {source}]"
                out = nbformat.v4.new_output("stream", name="stdout", text=note + "\n")
            kept.append(out)
        cell.outputs = kept
    return replaced


def relative_paths(text: str) -> str:
    """The checkout's absolute path (in run dirs, tracebacks, warnings) written relative to the repository root:
    a published copy names no path of the machine that ran it."""
    root = json.dumps(str(REPO_ROOT))[1:-1]  # as it stands inside the JSON text
    return text.replace(root + "/", "").replace(root, ".")


def publish(run_dir: Path, out_dir: Path, max_bytes: int) -> list[tuple[str, int, int]]:
    """Copy every ``NN_stage/NN_stage.ipynb`` of ``run_dir`` into ``out_dir``; ``[(name, bytes, replaced)]``."""
    found = sorted(p for p in run_dir.glob("[0-9][0-9]_*/[0-9][0-9]_*.ipynb") if p.stem == p.parent.name)
    if not found:
        raise SystemExit(f"no executed notebooks in {run_dir} (expected NN_stage/NN_stage.ipynb)")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in found:
        nb = nbformat.read(path, as_version=4)
        replaced = shrink(nb, max_bytes, f"{run_dir.name}/{path.parent.name}")
        dst = out_dir / path.name
        dst.write_text(relative_paths(nbformat.writes(nb)))
        rows.append((path.name, dst.stat().st_size, replaced))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "notebooks")
    ap.add_argument("--max-output-kb", type=int, default=400, help="larger outputs become a one-line note")
    args = ap.parse_args(argv)
    rows = publish(args.run_dir, args.out, args.max_output_kb * 1000)
    for name, size, replaced in rows:
        print(
            f"{name:<24} {size / 1e3:8.0f} kB"
            + (f"  ({replaced} large output(s) left out)" if replaced else "")
        )
    print(f"{'total':<24} {sum(r[1] for r in rows) / 1e3:8.0f} kB -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
