"""Does a finished run reproduce the committed reference? Stage by stage, figure by figure, with the reasons it may not.

    python -m vpolib verify outputs/cpu-B                        # against docs/results/<its profile>/
    python -m vpolib verify outputs/cpu-B --against docs/results/cpu

Counts (held-out queries, SFT examples and their sources, text pairs) should match exactly on the same code and
data; rewards and rates should lie within the reference's 95% CI. Each row says which. Both sides' processor,
resolved dtype and library versions are printed, and those that differ named: another CPU or dtype changes the
teacher's and the optimizer's generations, and everything downstream with them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vpolib.io import read_json, write_json
from vpolib.paths import REPO_ROOT

REFERENCE_ROOT = REPO_ROOT / "docs" / "results"
# (file in a run dir, file in a reference dir): what `make publish` copies
FILES = {"results": ("06_evaluate/results.json", "results.json"), "manifest": ("manifest.json", "manifest.json"),
         "refine": ("02_refine/metrics.json", "02_metrics.json")}  # fmt: skip
COUNTS = ("n_sft", "n_text_pairs", "n_candidates", "n_pass", "n_refined")  # stage 02's metrics


def load_side(path: Path, is_run: bool) -> dict:
    """``{"results", "manifest", "refine"}`` of a run dir or a reference dir (a missing file reads as {})."""
    side = {}
    for key, (in_run, in_ref) in FILES.items():
        file = path / (in_run if is_run else in_ref)
        side[key] = read_json(file) if file.exists() else {}
    return side


def _row(stage: str, figure: str, run, ref, lo=None, hi=None) -> dict:
    if run is None or ref is None:
        verdict = "missing"
    elif lo is None:
        verdict = "same" if run == ref else "DIFFERENT"
    else:
        verdict = "within CI" if lo <= run <= hi else "OUTSIDE CI"
    return {"stage": stage, "figure": figure, "run": run, "reference": ref, "ci": None if lo is None else [lo, hi],
            "verdict": verdict}  # fmt: skip


def _by_method(rows: list[dict] | None) -> dict:
    return {r["method"]: r for r in rows or []}


def figure_rows(run: dict, ref: dict) -> list[dict]:
    """One row per figure: counts compared exactly, rewards and rates against the reference's 95% CI."""
    rows = []
    m_run, m_ref = run["refine"], ref["refine"]
    for key in COUNTS:
        rows.append(_row("02_refine", key, m_run.get(key), m_ref.get(key)))
    for source in sorted(set(m_run.get("sft_by_source", {})) | set(m_ref.get("sft_by_source", {}))):
        rows.append(_row("02_refine", f"sft examples from {source}", m_run.get("sft_by_source", {}).get(source),
                         m_ref.get("sft_by_source", {}).get(source)))  # fmt: skip
    r_run, r_ref = run["results"], ref["results"]
    for key in ("heldout", "text_queries", "harmful_queries", "video_queries"):
        rows.append(
            _row("06_evaluate", f"n {key}", (r_run.get("n") or {}).get(key), (r_ref.get("n") or {}).get(key))
        )
    video_run, video_ref = (_by_method((r.get("video") or {}).get("overall")) for r in (r_run, r_ref))
    for method, ref_row in video_ref.items():
        got = video_run.get(method, {}).get("reward")
        rows.append(_row("06_evaluate", f"video reward: {method}", got, ref_row["reward"], ref_row["reward_lo"],
                         ref_row["reward_hi"]))  # fmt: skip
    for subset, outcome in (("all", "aligned"), ("harmful", "unsafe")):
        text_run, text_ref = (_by_method((r.get("text") or {}).get(subset)) for r in (r_run, r_ref))
        for method, ref_row in text_ref.items():
            got = text_run.get(method, {}).get(outcome)
            rows.append(_row("06_evaluate", f"% {outcome} ({subset}): {method}", got, ref_row[outcome],
                             ref_row[f"{outcome}_lo"], ref_row[f"{outcome}_hi"]))  # fmt: skip
    return rows


def environment(side: dict) -> dict:
    """Profile, seed, processor, resolved dtype and library versions of one side (from its manifest)."""
    manifest = side["manifest"]
    precision = manifest.get("precision") or {}
    return {"profile": manifest.get("profile"), "seed": manifest.get("seed"),
            "processor": (precision.get("cpu") or {}).get("model"), "dtype": precision.get("dtype"),
            **{f"{k}": v for k, v in (manifest.get("versions") or {}).items()}}  # fmt: skip


def report(rows: list[dict], env_run: dict, env_ref: dict) -> str:
    """The verification as text: environment first (differences marked), then one line per figure."""

    def fmt(x):
        return "-" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))

    lines = ["environment (run | reference):"]
    for key in sorted(set(env_run) | set(env_ref)):
        a, b = env_run.get(key), env_ref.get(key)
        mark = "" if a == b else "   <- differs" + ("" if a and b else " (not recorded on one side)")
        lines.append(f"  {key:13} {fmt(a)} | {fmt(b)}{mark}")
    lines.append("")
    width = max(len(r["figure"]) for r in rows) if rows else 10
    for r in rows:
        ci = f" [{fmt(r['ci'][0])}, {fmt(r['ci'][1])}]" if r["ci"] else ""
        lines.append(
            f"{r['stage']:11} {r['figure']:{width}}  {fmt(r['run']):>8}  ref {fmt(r['reference'])}{ci}  {r['verdict']}"
        )
    bad = [r for r in rows if r["verdict"] in ("DIFFERENT", "OUTSIDE CI")]
    lines.append("")
    lines.append(f"{len(rows) - len(bad)} of {len(rows)} figures reproduce; {len(bad)} do not"
                 + (": " + ", ".join(r["figure"] for r in bad) if bad else ""))  # fmt: skip
    return "\n".join(lines)


def load_sides(run_dir: str | Path, against: str | Path | None = None) -> tuple[dict, dict]:
    """(run, reference) sides; the reference is a committed one (default: docs/results/<the run's profile>) or
    another finished run dir, to compare two runs of one's own (two dtypes, two machines)."""
    run_dir = Path(run_dir)
    if not (run_dir / "manifest.json").exists():
        raise FileNotFoundError(f"{run_dir}: not a run dir (no manifest.json)")
    run = load_side(run_dir, is_run=True)
    ref_dir = Path(against) if against else REFERENCE_ROOT / run["manifest"].get("profile", "cpu")
    ref_is_run = (ref_dir / FILES["results"][0]).exists()
    if not ref_is_run and not (ref_dir / "results.json").exists():
        raise FileNotFoundError(
            f"{ref_dir}: no committed reference (results.json) or finished run to verify against"
        )
    return run, load_side(ref_dir, is_run=ref_is_run)


def verify(run_dir: str | Path, against: str | Path | None = None) -> tuple[list[dict], str]:
    """Compare ``run_dir`` with the reference (see ``load_sides``); (rows, report)."""
    run, ref = load_sides(run_dir, against)
    rows = figure_rows(run, ref)
    return rows, report(rows, environment(run), environment(ref))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vpolib verify", description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a finished run dir")
    ap.add_argument(
        "--against", help="a reference dir or another finished run dir (default: docs/results/<profile>)"
    )
    ap.add_argument("--strict", action="store_true", help="exit 1 when a figure does not reproduce")
    ap.add_argument("--json", help="also write the rows and both environments to this file")
    args = ap.parse_args(argv)
    try:
        rows, text = verify(args.run, args.against)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(text)
    if args.json:
        run, ref = load_sides(args.run, args.against)
        write_json(args.json, {"run": environment(run), "reference": environment(ref), "rows": rows})
    return int(args.strict and any(r["verdict"] in ("DIFFERENT", "OUTSIDE CI") for r in rows))
