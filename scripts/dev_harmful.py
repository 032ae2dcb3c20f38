"""The harmless principle on the real dev split, per preference round of a run (dev split only, never held-out).

    .venv/bin/python scripts/dev_harmful.py --run-dir outputs/cpu-V --json docs/results/cpu/dev_harmful_cpu-V.json

For each round's text pairs (04's ``text_pairs.jsonl``, then 05's ``round<r>/text_pairs.jsonl``): how many pairs
reject a prompt the judge found unsafe, of which kind, and which harmful terms those rejected prompts hold. For each
round's judged real dev prompts (05's ``dev_text_judged_r<r>.jsonl``, round 0 the SFT model): the share passing every
principle and the harmful-flagged queries whose prompt is still unsafe, with the terms it keeps. And how many of the
SFT set's real queries hold a harmful term, and open with one. Reads files only.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from vpolib.examples import unsafe_rejected
from vpolib.io import read_jsonl, write_json
from vpolib.preference import dev_paths
from vpolib.safety_lexicon import harmful_terms


def pair_rounds(run_dir: Path) -> list[dict]:
    """Each round's text pairs with an unsafe rejected prompt: counts by kind and the harmful terms rejected."""
    files = [run_dir / "04_feedback" / "text_pairs.jsonl"]
    files += sorted(
        (run_dir / "05_dpo").glob("round*/text_pairs.jsonl"), key=lambda p: int(p.parent.name[5:])
    )
    out = []
    for r, path in enumerate((f for f in files if f.exists()), 1):
        rows = read_jsonl(path)[0]
        unsafe = [p for p in rows if unsafe_rejected(p)]
        terms = Counter(t for p in unsafe for t in set(harmful_terms(p["rejected"][0]["content"])))
        out.append({"round": r, "text_pairs": len(rows), "unsafe_rejected": len(unsafe),
                    "kinds": dict(Counter(p["kind"] for p in unsafe)), "terms": dict(terms.most_common())})  # fmt: skip
    return out


def dev_rounds(run_dir: Path) -> list[dict]:
    """Each round's judged real dev prompts: pass share and the harmful-flagged queries still unsafe."""
    out = []
    for r in range(100):
        path = dev_paths(run_dir / "05_dpo", r)["judged"]
        if not path.exists():
            break
        rows = read_jsonl(path)[0]
        harmful = [x for x in rows if x.get("harmful")]
        unsafe = [x for x in harmful if x["passed"].get("harmless") is False]
        out.append({"round": r, "n": len(rows), "pass": sum(x["verdict"] is True for x in rows) / len(rows),
                    "harmful": len(harmful), "harmful_unsafe": len(unsafe),
                    "unsafe": [{"query": x["query"], "terms": harmful_terms(x["prompt"])} for x in unsafe]})  # fmt: skip
    return out


def sft_terms(run_dir: Path) -> dict:
    """The SFT set's real queries (02's ``sft.jsonl``, ShapesWorld left out) with a harmful term, and those whose
    first word is one."""
    rows = [r for r in read_jsonl(run_dir / "02_refine" / "sft.jsonl")[0] if r.get("source") != "shapes"]
    with_term = [r["query"].split() for r in rows if harmful_terms(r["query"])]
    return {"real_queries": len(rows), "with_term": len(with_term),
            "opening_with_term": sum(bool(harmful_terms(words[0])) for words in with_term)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    run_dir = Path(args.run_dir)
    out = {
        "run": run_dir.name,
        "pairs": pair_rounds(run_dir),
        "dev": dev_rounds(run_dir),
        "sft": sft_terms(run_dir),
    }
    for p in out["pairs"]:
        print(f"round {p['round']} pairs: {p['text_pairs']} text pairs, {p['unsafe_rejected']} reject an unsafe "
              f"prompt {p['kinds']}; terms {p['terms']}")  # fmt: skip
    for d in out["dev"]:
        print(f"round {d['round']} dev: pass {d['pass']:.0%} of {d['n']}; {d['harmful_unsafe']} of {d['harmful']} "
              f"harmful queries unsafe: " + "; ".join(f"{u['query'][:40]!r} {u['terms']}" for u in d["unsafe"]))  # fmt: skip
    print(f"SFT set: {out['sft']}")
    if args.json:
        write_json(args.json, out)


if __name__ == "__main__":
    main()
