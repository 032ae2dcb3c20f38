"""The paper's video pairs: strict dominance on checklist answers, and their merge with the text pairs.

A scored video is a dict ``{"key", "id", "k", "query", "prompt", "answers": {question id: "yes" |
"no" | None}, "score", "max_score", "video"}``. Video i is preferred over video j of the SAME query
only if i is never "no" where j is "yes", wins at least one item, and scores higher by more than the
margin (the reference's ``process_data.py`` rule, with explicit grouping and counted drop reasons).
The merge keeps the first source's pairs (text, as the reference does), at most a set number per query.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable

from vpolib.templates import optimize_messages

# Why an unordered pair of videos of one query did not become a preference pair (checked in this order).
MISSING = "missing_items"  # an answer is missing or the two checklists differ: dominance is unverifiable
NOT_DOMINANT = "not_dominant"  # each video wins some item: neither dominates
SAME = "no_win"  # identical answers on every item
MARGIN = "within_margin"  # dominant, but the score gap is not larger than the margin
REASONS = (MISSING, NOT_DOMINANT, SAME, MARGIN)


def drop_reason(better: dict, worse: dict, margin: float) -> str | None:
    """``None`` if ``better`` is preferred over ``worse`` (both scored videos), else the drop reason."""
    a, b = better["answers"], worse["answers"]
    if set(a) != set(b) or any(v not in ("yes", "no") for v in [*a.values(), *b.values()]):
        return MISSING
    if any(a[q] == "no" and b[q] == "yes" for q in a):
        return NOT_DOMINANT
    if not any(a[q] == "yes" and b[q] == "no" for q in a):
        return SAME
    if not better["score"] - worse["score"] > margin:
        return MARGIN
    return None


def group_by_query(videos: Iterable[dict]) -> dict[str, list[dict]]:
    """Scored videos grouped by query id (any number per query, in any order), each group sorted by k."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for v in videos:
        groups[v["id"]].append(v)
    return {qid: sorted(vs, key=lambda v: v["k"]) for qid, vs in groups.items()}


def verdicts(group: list[dict], margin_fraction: float) -> list[dict]:
    """Every unordered pair of one query's videos, checked both ways: ``{"chosen", "rejected", "reason"}``.

    ``reason`` is ``None`` for a preference pair; a dropped pair keeps the reason of the direction that
    got further (and lists the higher-scored video as ``chosen``). The margin is ``margin_fraction *
    max_score`` of the query's checklist.
    """
    out = []
    for i, vi in enumerate(group):
        for vj in group[i + 1 :]:
            margin = margin_fraction * max(vi["max_score"], vj["max_score"])
            ij, ji = drop_reason(vi, vj, margin), drop_reason(vj, vi, margin)
            if ij is None or ji is None:
                hi, lo = (vi, vj) if ij is None else (vj, vi)
                out.append({"chosen": hi, "rejected": lo, "reason": None})
            else:
                hi, lo = (vi, vj) if vi["score"] >= vj["score"] else (vj, vi)
                out.append({"chosen": hi, "rejected": lo, "reason": max(ij, ji, key=REASONS.index)})
    return out


def dominant_pairs(videos: Iterable[dict], margin_fraction: float) -> tuple[list[dict], Counter]:
    """All preference pairs per query (largest score gap first) and drop counts per rule.

    Drop counts are per unordered video pair, except ``too_few_videos`` (queries with under 2 videos).
    """
    pairs, dropped = [], Counter()
    for qid, group in group_by_query(videos).items():
        if len(group) < 2:
            dropped["too_few_videos"] += 1
            continue
        found = []
        for v in verdicts(group, margin_fraction):
            if v["reason"]:
                dropped[v["reason"]] += 1
            else:
                found.append(v)
        found.sort(
            key=lambda v: (
                v["rejected"]["score"] - v["chosen"]["score"],
                v["chosen"]["k"],
                v["rejected"]["k"],
            )
        )
        pairs.extend({"id": qid, "chosen": v["chosen"], "rejected": v["rejected"]} for v in found)
    return pairs, dropped


def explain(chosen: dict, rejected: dict) -> str:
    """One line saying why ``chosen`` beat ``rejected`` (for the pair gallery and the provenance)."""
    wins = [q for q, v in chosen["answers"].items() if v == "yes" and rejected["answers"][q] == "no"]
    return (
        f"k={chosen['k']} over k={rejected['k']}: never worse, better on {len(wins)} item(s) "
        f"({', '.join(map(str, wins))}); score {chosen['score']:.3g} vs {rejected['score']:.3g} "
        f"of {chosen['max_score']:.3g}"
    )


def to_trl(pair: dict, instruction: str = "paper") -> dict:
    """A video pair in TRL's conversational preference format, with provenance (scores, videos, why)."""
    hi, lo = pair["chosen"], pair["rejected"]
    return {
        "id": pair["id"],
        "query": hi["query"],
        # the same user turn as SFT and the text pairs
        "prompt": optimize_messages(hi["query"], instruction, hi.get("source")),
        "chosen": [{"role": "assistant", "content": hi["prompt"]}],
        "rejected": [{"role": "assistant", "content": lo["prompt"]}],
        "source": "video",
        "scores": {"chosen": hi["score"], "rejected": lo["score"], "max_score": hi["max_score"]},
        "videos": {"chosen": hi["video"], "rejected": lo["video"]},
        "why": explain(hi, lo),
    }


def pair_counts(scored: list[dict], pairs: list[dict], dropped: Counter, capped: list[dict]) -> dict:
    """What became of the video pairs: every unordered pair of one query's videos compared, valid or dropped by
    which rule, queries with under two videos, the share of queries with a pair, and pairs kept after the cap."""
    groups = group_by_query(scored)
    return {
        "video_pairs_compared": sum(len(g) * (len(g) - 1) // 2 for g in groups.values()),
        "video_pairs_valid": len(pairs),
        "video_pairs_dropped": {r: dropped.get(r, 0) for r in REASONS},
        "queries_too_few_videos": dropped.get("too_few_videos", 0),
        "pair_yield": len({p["id"] for p in pairs}) / max(len(groups), 1),
        "video_pairs_written": len(capped),
    }


def merge_pairs(
    text: list[dict],
    video: list[dict],
    text_first: bool = True,
    max_per_query: int = 1,
    key: Callable[[dict], str] = lambda p: p["query"].strip(),
) -> tuple[list[dict], dict]:
    """Merge text and video pairs: the first source keeps its pairs, at most ``max_per_query`` per query.

    Queries are matched by their text (as the reference does), since the two sources may number the same
    query differently. Returns ``(merged, stats)`` with per-source ``kept`` and ``dropped_cap`` counts.
    """
    order = [("text", text), ("video", video)] if text_first else [("video", video), ("text", text)]
    per_query: Counter = Counter()
    merged, stats = [], {}
    for source, pairs in order:
        kept = dropped = 0
        for pair in pairs:
            k = key(pair)
            if per_query[k] >= max_per_query:
                dropped += 1
                continue
            per_query[k] += 1
            merged.append({**pair, "source": source})
            kept += 1
        stats[source] = {"input": len(pairs), "kept": kept, "dropped_cap": dropped}
    return merged, stats


def contest(text: list[dict], video: list[dict], merged: list[dict]) -> dict:
    """For queries that have both a text and a video pair: how many kept each in the merge."""
    key = lambda p: p["query"].strip()  # noqa: E731 - the merge's own key
    both = {key(p) for p in text} & {key(p) for p in video}
    kept = Counter(p["source"] for p in merged if key(p) in both)
    return {"both": len(both), "text_won": kept.get("text", 0), "video_won": kept.get("video", 0)}
