"""VBench short prompts paired line by line with real teacher expansions (GPT-4o, Wan2.1).

Pairs are only ever made by line alignment that has been checked: equal line counts plus a
lexical-overlap test that the diagonal beats a one-line shift. When counts differ, a banded
monotone alignment finds the unmatched lines, which are reported and dropped, never shifted over.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from vpolib.words import FUNCTION_WORDS

# (set name, short-prompt file, {teacher: expansion file})
SETS = {
    "dimension": (
        "all_dimension.txt",
        {"gpt4o": "all_dimension_longer.txt", "wan": "all_dimension_aug_wanx_seed42.txt"},
    ),
    "category": ("all_category.txt", {"gpt4o": "all_category_longer.txt"}),
}


def read_lines(path: str | Path) -> tuple[list[str], dict]:
    """Lines of a text file, and facts about it (a missing final newline makes `wc -l` count one less)."""
    text = Path(path).read_text(encoding="utf-8")
    lines = text.splitlines()
    return lines, {
        "file": Path(path).name,
        "lines": len(lines),
        "wc_l": text.count("\n"),
        "final_newline": text.endswith("\n"),
        "blank": sum(not line.strip() for line in lines),
    }


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if w not in FUNCTION_WORDS and len(w) > 1}


def overlap(short: str, long: str) -> float:
    """Share of the short prompt's content words found in the expansion."""
    words = _words(short)
    return len(words & _words(long)) / len(words) if words else 0.0


def align(
    shorts: list[str], longs: list[str], band: int = 3, gap: float = 0.35
) -> tuple[list[tuple[int, int]], dict]:
    """Monotone alignment -> (pairs of line indices, report).

    Equal counts: the identity alignment, accepted only if its mean overlap beats a one-line shift.
    Different counts: dynamic programming within a band around the diagonal; a gap costs ``gap``.
    """
    n, m = len(shorts), len(longs)
    report = {"short_lines": n, "long_lines": m}
    if n == m:
        per_pair = [overlap(s, lo) for s, lo in zip(shorts, longs, strict=True)]
        diag = sum(per_pair) / max(n, 1)
        shifted = max(
            sum(overlap(shorts[i], longs[i + d]) for i in range(max(0, -d), min(n, m - d))) / max(n - 1, 1)
            for d in (-1, 1)
        )
        # Zero-overlap pairs are listed for a human look (often paraphrases: 'skydiving' -> 'leaps from a plane').
        report.update(
            mean_overlap=round(diag, 3),
            mean_overlap_shifted=round(shifted, 3),
            zero_overlap=[i for i, o in enumerate(per_pair) if o == 0],
        )
        if diag <= shifted + 0.1:
            raise ValueError(f"files look misaligned: diagonal overlap {diag:.2f} vs shifted {shifted:.2f}")
        return [(i, i) for i in range(n)], {**report, "dropped_short": [], "dropped_long": []}
    width = abs(n - m) + band
    neg = float("-inf")
    score = [[neg] * (m + 1) for _ in range(n + 1)]
    back = [[None] * (m + 1) for _ in range(n + 1)]
    score[0][0] = 0.0
    for i in range(n + 1):
        for j in range(max(0, i - width), min(m, i + width) + 1):
            if i == j == 0:
                continue
            options = []
            if i and j and score[i - 1][j - 1] > neg:
                options.append((score[i - 1][j - 1] + overlap(shorts[i - 1], longs[j - 1]), "pair"))
            if i and score[i - 1][j] > neg:
                options.append((score[i - 1][j] - gap, "skip_short"))
            if j and score[i][j - 1] > neg:
                options.append((score[i][j - 1] - gap, "skip_long"))
            if options:
                score[i][j], back[i][j] = max(options)
    pairs, dropped_s, dropped_l = [], [], []
    i, j = n, m
    while i or j:
        move = back[i][j]
        if move == "pair":
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif move == "skip_short":
            dropped_s.append(i - 1)
            i -= 1
        else:
            dropped_l.append(j - 1)
            j -= 1
    return pairs[::-1], {**report, "dropped_short": dropped_s[::-1], "dropped_long": dropped_l[::-1]}


def load_pairs(vbench_dir: str | Path) -> tuple[list[dict], list[dict]]:
    """All VBench pairs -> (records, per-file alignment reports). Unaligned lines are dropped and reported."""
    vbench_dir = Path(vbench_dir)
    info = json.loads((vbench_dir / "VBench_full_info.json").read_text())
    dims = {}
    for item in info:
        dims.setdefault(item["prompt_en"].strip(), item.get("dimension", []))
    records, reports = [], []
    for set_name, (short_file, teachers) in SETS.items():
        shorts, short_facts = read_lines(vbench_dir / short_file)
        rows = {
            i: {
                "id": f"vb{set_name[0]}-{i:04d}",
                "set": set_name,
                "query": s.strip(),
                "gpt4o": None,
                "wan": None,
                "dimensions": dims.get(s.strip(), []),
            }
            for i, s in enumerate(shorts)
        }
        for teacher, long_file in teachers.items():
            longs, long_facts = read_lines(vbench_dir / long_file)
            pairs, rep = align(shorts, longs)
            reports.append(
                {
                    "set": set_name,
                    "teacher": teacher,
                    "short": short_facts,
                    "long": long_facts,
                    **rep,
                    "pairs": len(pairs),
                }
            )
            for i, j in pairs:
                rows[i][teacher] = longs[j].strip() or None
        records += [r for r in rows.values() if r["query"]]
    return records, reports


def alignment_table(reports: list[dict]):
    """The alignment reports of :func:`load_pairs` as a table, one row per (set, teacher) file."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "set": r["set"],
                "teacher": r["teacher"],
                "short lines": r["short_lines"],
                "long lines": r["long_lines"],
                "wc -l of long file": r["long"]["wc_l"],
                "final newline": r["long"]["final_newline"],
                "pairs": r["pairs"],
                "dropped": len(r["dropped_short"]) + len(r["dropped_long"]),
                "mean overlap": r.get("mean_overlap"),
                "if shifted by 1": r.get("mean_overlap_shifted"),
                "zero-overlap pairs": len(r.get("zero_overlap", [])),
            }
            for r in reports
        ]
    )
