"""Write docs/beyond.md ("Beyond the paper") from a run's published results: notebook 07's beyond.json and, beside
it, notebook 06's results.json (run id, profile, seed, target).

    .venv/bin/python scripts/beyond_report.py docs/results/extended --out docs/beyond.md

Every number is read from the file; 95% bootstrap CIs in brackets.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def ci(value, lo, hi, fmt="{:.3f}") -> str:
    if value is None:
        return "-"
    return f"{fmt.format(value)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def model_section(b: dict, target: str) -> str:
    overall = {(r["model"], r["method"]): r for r in b["overall"]}
    methods = list(dict.fromkeys(r["method"] for r in b["overall"]))
    models = list(dict.fromkeys(r["model"] for r in b["overall"]))
    rows = [
        [f"**{m}**" if m == target else m]
        + [
            ci(r["reward"], r["reward_lo"], r["reward_hi"]) if (r := overall.get((mod, m))) else "-"
            for mod in models
        ]
        for m in methods
    ]
    gains = {(r["model"], r["baseline"]): r for r in b["gains"]}
    grows = [
        [base] + [ci(g["gain"], g["lo"], g["hi"]) if (g := gains.get((mod, base))) else "-" for mod in models]
        for base in methods
        if base != target
    ]
    return (
        "Video reward (share of the query's checklist weight passed) of every method's held-out prompts, rendered by\n"
        "model A (whose feedback VPO trained on) and model B (never seen in training), same noise per query:\n\n"
        + table(["method"] + [f"model {m}" for m in models], rows)
        + f"\n\nPaired reward gain of {target} over each method (mean difference over the same queries):\n\n"
        + table(["baseline"] + [f"model {m}" for m in models], grows)
    )


def testtime_section(t: dict) -> str:
    rows = [
        [
            r["method"],
            r["round"],
            f"{r['videos']:.2f}",
            ci(r["best_reward"], r["best_lo"], r["best_hi"]),
            ci(r["fresh_reward"], r["fresh_lo"], r["fresh_hi"]),
            f"{r['stopped']:.2f}",
        ]
        for r in t["rounds"]
    ]
    gains = [
        [g["method"], g["metric"].replace("_reward", ""), g["rounds"], ci(g["gain"], g["lo"], g["hi"])]
        for g in t["gains"]
    ]
    return (
        f"{t['n_queries']} held-out ShapesWorld queries, up to {t['max_rounds']} rounds, rewrite temperature "
        f"{t['temperature']}. Round 1 = the optimizer's single prompt; *best*: best-so-far reward on the noise it was "
        "selected on; *fresh*: the selected prompt rendered from new noise; videos = mean videos rendered per query "
        "(the cost).\n\n"
        + table(["optimizer", "round", "videos / query", "best", "fresh", "share stopped (all passed)"], rows)
        + "\n\nLast round minus round 1, paired over queries:\n\n"
        + table(["optimizer", "reward", "rounds", "gain"], gains)
    )


def diagnostics_section(d: dict, probe: list[dict], target: str) -> str:
    lr = [
        [
            r.get("model", "A"),
            r["method"],
            f"{r['words']:.1f}",
            ci(r["spearman"], r["lo"], r["hi"]),
            f"{r['slope_per_10_words']:+.3f}",
            f"{r['reward_short_half']:.3f} / {r['reward_long_half']:.3f}",
        ]
        for r in d["length_reward"]
    ]
    dims = [
        [
            r.get("model", "A"),
            r["kind"],
            r["n"],
            f"{r['base']:.3f}",
            f"{r['target']:.3f}",
            ci(r["delta"], r["lo"], r["hi"]),
            r["verdict"],
        ]
        for r in d["dimension_delta"]
    ]
    drift = [
        [
            r["target"],
            r["group"],
            r["n"],
            f"{r['base_words']:.1f}",
            f"{r['target_words']:.1f}",
            ci(r["delta"], r["lo"], r["hi"], "{:.2f}"),
            f"{r['ratio']:.2f}",
            r["verdict"],
        ]
        for r in d["length_drift"]
    ]
    pr = [[r["model"], r["row"], r["n"], ci(r["value"], r["lo"], r["hi"])] for r in probe]
    return (
        "**Reward against prompt length** (words), per method and video model: Spearman correlation, slope per 10 "
        "words, mean reward of the shorter / longer half.\n\n"
        + table(["model", "method", "words", "Spearman", "slope / 10 words", "reward short / long half"], lr)
        + f"\n\n**Per-dimension pass rate, {target} vs sft** (same questions of the same queries; CI over queries):\n\n"
        + table(["model", "dimension", "queries", "sft", target, "difference", "verdict"], dims)
        + "\n\n**Prompt-insensitivity probe**: each query's video from its own caption (right), another scene's "
        "caption (irrelevant) and the empty prompt, scored against the query.\n\n"
        + table(["model", "row", "n", "value"], pr)
        + "\n\n**Prompt-length drift** (words per prompt against SFT, same queries; dpo = real queries, shapes = "
        "ShapesWorld):\n\n"
        + table(["method", "queries", "n", "sft words", "words", "difference", "ratio", "verdict"], drift)
    )


def render(results: dict, b: dict, source: str) -> str:
    target = results.get("target", "vpo")
    parts = [
        "# Beyond the paper: transfer, a test-time baseline, reward-hacking diagnostics",
        f"Generated by `scripts/beyond_report.py` from [`{source}`]({source}) "
        f"(run `{results.get('run_id')}`, profile `{results.get('profile')}`, seed {results.get('seed')}). "
        "Notebook 07 (beyond the paper) computes all of it (`vpolib/transfer.py`, `vpolib/testtime.py`, "
        "`vpolib/diagnostics.py`); 95% bootstrap CIs in brackets.",
    ]
    if "model_b" in b:
        parts += [
            "## 1. Transfer to a second video model (model B, docs/shapesworld_b.md)",
            model_section(b["model_b"], target),
        ]
    if "testtime" in b:
        parts += ["## 2. Test-time baseline: generate -> score -> rewrite", testtime_section(b["testtime"])]
    if "diagnostics" in b:
        parts += [
            "## 3. Reward-hacking diagnostics",
            diagnostics_section(b["diagnostics"], b.get("probe", []), target),
        ]
    secs = b.get("seconds", {})
    if secs:
        parts += [
            "## Time",
            "Wall seconds of each part in that run (2-core CPU): "
            + ", ".join(f"{k} {v:.0f} s" for k, v in secs.items())
            + ".",
        ]
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results_dir", help="a folder with results.json and beyond.json (docs/results/<profile>)")
    ap.add_argument("--out", default="docs/beyond.md")
    ap.add_argument("--extra", default=None, help="markdown appended as is (how to read it)")
    args = ap.parse_args(argv)
    folder = Path(args.results_dir)
    results = json.loads((folder / "results.json").read_text())
    beyond = json.loads((folder / "beyond.json").read_text())
    text = render(results, beyond, (folder / "beyond.json").as_posix())
    if args.extra:
        text += "\n" + Path(args.extra).read_text()
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
