"""Publish a run's executed notebooks beside the repo's stripped ones, so a code host shows every figure and table.

    .venv/bin/python scripts/publish_notebooks.py outputs/cpu-R     # or: make notebooks RUN=outputs/cpu-R

The copies go to ``outputs/notebooks/`` and, with ``--branch NAME`` (``make notebooks``: ``executed-notebooks``),
are committed as the tip of that branch: a branch of its own history, never merged into main (whose notebooks stay
stripped), written through a temporary index so the checkout, its index and main are left as they are. The
branch's README names the run, its commit, processor and dtype (from the run's manifest).

Each stage's executed copy (``RUN/NN_stage/NN_stage.ipynb``) is copied as it ran, with two changes that keep the
folder small: widget state is dropped (a code host cannot run widgets; the static fallbacks stay), and an output
larger than ``--max-output-kb`` (a long run of GIFs) is replaced by a one-line note saying what was left out and
where it is in the run dir. The notebook's own sizes are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
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
    for old in out_dir.glob("*.ipynb"):  # a chapter an earlier run had and this one lacks must not linger
        old.unlink()
    rows = []
    for path in found:
        nb = nbformat.read(path, as_version=4)
        replaced = shrink(nb, max_bytes, f"{run_dir.name}/{path.parent.name}")
        dst = out_dir / path.name
        dst.write_text(relative_paths(nbformat.writes(nb)))
        rows.append((path.name, dst.stat().st_size, replaced))
    return rows


def branch_readme(manifest: dict) -> str:
    """The published branch's README: which run these notebooks are, on which machine and commit."""
    precision = manifest.get("precision") or {}
    cpu = precision.get("cpu") or {}
    return (
        "# Executed notebooks of the reference run\n\n"
        f"Run `{manifest.get('run_id')}` (profile `{manifest.get('profile')}`, seed {manifest.get('seed')}) at "
        f"main's commit `{str(manifest.get('git_commit'))[:7]}`, on {cpu.get('model', '?')} "
        f"({cpu.get('cores', '?')} cores, {precision.get('dtype', '?')}), {manifest.get('created')}.\n\n"
        "Written by `make notebooks RUN=outputs/<run>` (`scripts/publish_notebooks.py`): the notebooks as they ran, "
        "widget state dropped and any output over 400 kB replaced by a note. The notebooks on main are the same "
        "chapters without outputs; this branch is never merged.\n"
    )


def git(*args: str, cwd: Path, env: dict | None = None) -> str:
    """``git ARGS`` in ``cwd``: its output, or a one-line error that names the command."""
    res = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if res.returncode:
        raise SystemExit(f"git {' '.join(args)}: {res.stderr.strip()}")
    return res.stdout.strip()


def commit_to_branch(folder: Path, branch: str, message: str, repo: Path = REPO_ROOT) -> str:
    """Commit every file of ``folder`` (flat) as the whole tree of ``branch`` (created when missing, else one
    commit on top of it), through a temporary index: the checkout and its index are untouched. Returns the
    commit id."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            blob = git("hash-object", "-w", str(path), cwd=repo)
            git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path.name}", cwd=repo, env=env)
        tree = git("write-tree", cwd=repo, env=env)
    ref = f"refs/heads/{branch}"
    parent = subprocess.run(
        ["git", "rev-parse", "-q", "--verify", ref], cwd=repo, capture_output=True, text=True
    )
    parents = ["-p", parent.stdout.strip()] if parent.returncode == 0 else []
    commit = git("commit-tree", tree, *parents, "-m", message, cwd=repo)
    git("update-ref", ref, commit, cwd=repo)
    return commit


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "notebooks")
    ap.add_argument("--max-output-kb", type=int, default=400, help="larger outputs become a one-line note")
    ap.add_argument("--branch", help="also commit the copies (and a README) as the tip of this branch")
    args = ap.parse_args(argv)
    rows = publish(args.run_dir, args.out, args.max_output_kb * 1000)
    manifest_path = args.run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    (args.out / "README.md").write_text(branch_readme(manifest))
    for name, size, replaced in rows:
        print(
            f"{name:<24} {size / 1e3:8.0f} kB"
            + (f"  ({replaced} large output(s) left out)" if replaced else "")
        )
    print(f"{'total':<24} {sum(r[1] for r in rows) / 1e3:8.0f} kB -> {args.out}")
    if args.branch:
        commit = commit_to_branch(
            args.out, args.branch, f"Executed notebooks of run {manifest.get('run_id')}"
        )
        print(f"branch {args.branch} -> {commit[:7]} (publish it: git push origin {args.branch})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
