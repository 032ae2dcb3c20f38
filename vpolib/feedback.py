"""Stage 04: video-level preference pairs from checklist scores, merged with notebook 02's text pairs.

A scored video is a dict ``{"key", "id", "k", "query", "prompt", "answers": {question id: "yes" |
"no" | None}, "score", "max_score", "video"}``. Video i is preferred over video j of the SAME query
only if i is never "no" where j is "yes", wins at least one item, and scores higher by more than the
margin (the reference's ``process_data.py`` rule, with explicit grouping and counted drop reasons).
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

from vpolib.io import append_jsonl, done_keys, read_jsonl
from vpolib.progress import track
from vpolib.templates import optimize_messages

# Why an unordered pair of videos of one query did not become a preference pair (checked in this order).
MISSING = "missing_items"  # an answer is missing or the two checklists differ: dominance is unverifiable
CONFLICT = "not_dominant"  # each video wins some item
SAME = "no_win"  # identical answers on every item
MARGIN = "within_margin"  # dominant, but the score gap is not larger than the margin
REASONS = (MISSING, CONFLICT, SAME, MARGIN)


def video_seed(seed: int, query_id: str) -> int:
    """A stable per-query seed (not the position in the run), so a rerun renders a query with the same seed.

    A query cut off half-way is finished as a smaller batch, so its remaining videos get other noise.
    """
    return (seed * 1_000_003 + zlib.crc32(query_id.encode())) % 2**31


def compare(better: dict, worse: dict, margin: float) -> str | None:
    """``None`` if ``better`` is preferred over ``worse`` (both scored videos), else the drop reason."""
    a, b = better["answers"], worse["answers"]
    if set(a) != set(b) or any(v not in ("yes", "no") for v in [*a.values(), *b.values()]):
        return MISSING
    if any(a[q] == "no" and b[q] == "yes" for q in a):
        return CONFLICT
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
            ij, ji = compare(vi, vj, margin), compare(vj, vi, margin)
            if ij is None or ji is None:
                hi, lo = (vi, vj) if ij is None else (vj, vi)
                out.append({"chosen": hi, "rejected": lo, "reason": None})
            else:
                hi, lo = (vi, vj) if vi["score"] >= vj["score"] else (vj, vi)
                out.append({"chosen": hi, "rejected": lo, "reason": max(ij, ji, key=REASONS.index)})
    return out


def video_pairs(videos: Iterable[dict], margin_fraction: float) -> tuple[list[dict], Counter]:
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
    """One line saying why ``chosen`` beat ``rejected`` (for the gallery and the provenance)."""
    wins = [q for q, v in chosen["answers"].items() if v == "yes" and rejected["answers"][q] == "no"]
    return (
        f"k={chosen['k']} over k={rejected['k']}: never worse, better on {len(wins)} item(s) "
        f"({', '.join(map(str, wins))}); score {chosen['score']:.3g} vs {rejected['score']:.3g} "
        f"of {chosen['max_score']:.3g}"
    )


def to_trl(pair: dict) -> dict:
    """A video pair in TRL's conversational preference format, with provenance (scores, videos, why)."""
    hi, lo = pair["chosen"], pair["rejected"]
    return {
        "id": pair["id"],
        "query": hi["query"],
        "prompt": optimize_messages(hi["query"]),  # the same user turn as SFT and the text pairs
        "chosen": [{"role": "assistant", "content": hi["prompt"]}],
        "rejected": [{"role": "assistant", "content": lo["prompt"]}],
        "source": "video",
        "scores": {"chosen": hi["score"], "rejected": lo["score"], "max_score": hi["max_score"]},
        "videos": {"chosen": hi["video"], "rejected": lo["video"]},
        "why": explain(hi, lo),
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


def sample_prompts(
    records: list[dict],
    path: Path,
    sampler: Callable[[list[str]], list[list[str]]],
    batch_size: int = 8,
    progress: bool = True,
) -> list[dict]:
    """k optimizer prompts per query, appended to ``path`` as ``{"id", "query", "prompts"}`` (resumable).

    ``sampler(queries) -> k prompts each``. Queries already in ``path`` are not sampled again.
    """
    done = done_keys(path, "id")
    todo = [r for r in records if r["id"] not in done]
    for start in track(range(0, len(todo), batch_size), desc="sampling prompts", disable=not progress):
        batch = todo[start : start + batch_size]
        for rec, prompts in zip(batch, sampler([r["query"] for r in batch]), strict=True):
            append_jsonl(path, {"id": rec["id"], "query": rec["query"], "prompts": list(prompts)})
    rows, _ = read_jsonl(path) if Path(path).exists() else ([], [])
    return rows


def render_and_score(
    rows: list[dict], backend, out_dir: Path, seed: int, save_mp4: bool = False, progress: bool = True
) -> list[dict]:
    """Render each query's prompts, score every video against the ORIGINAL query (``out_dir/scores.jsonl``).

    Resumable per video (key ``"<id>/<k>"``): a rerun renders only what is missing. Each query's
    checklist goes to ``checklists.jsonl``; a query whose rendering or scoring fails is recorded in
    ``skips.jsonl`` and skipped, and finished work is kept.
    """
    from vpolib.video import media_path

    out_dir = Path(out_dir)
    scores, checklists = out_dir / "scores.jsonl", out_dir / "checklists.jsonl"
    done, listed = done_keys(scores, "key"), done_keys(checklists, "id")
    for row in track(rows, desc="render + score", disable=not progress):
        todo = [k for k in range(len(row["prompts"])) if f"{row['id']}/{k}" not in done]
        if not todo:
            continue
        try:
            questions = backend.checklist(row["query"])
            if row["id"] not in listed:
                append_jsonl(
                    checklists,
                    {
                        "id": row["id"],
                        "query": row["query"],
                        "questions": [
                            {"id": str(q.id), "text": q.text, "weight": q.weight, "kind": q.kind}
                            for q in questions
                        ],
                    },
                )
                listed.add(row["id"])
            prompts = [row["prompts"][k] for k in todo]
            videos = backend.render(prompts, video_seed(seed, row["id"]))  # [B, F, H, W, 3]
            for k, clip in zip(todo, videos, strict=True):
                gif = media_path(out_dir, row["id"], k, "gif")
                backend.save(clip, gif, save_mp4)
                append_jsonl(
                    scores,
                    {
                        "key": f"{row['id']}/{k}",
                        "id": row["id"],
                        "k": k,
                        "query": row["query"],
                        "prompt": row["prompts"][k],
                        "video": str(gif.relative_to(out_dir)),
                        **backend.score(questions, clip),
                    },
                )
        except Exception as err:  # a failing query is a recorded skip, not a lost run
            append_jsonl(out_dir / "skips.jsonl", {"id": row["id"], "reason": f"{type(err).__name__}: {err}"})
    return read_jsonl(scores)[0] if scores.exists() else []


def answer_matrix(scored: list[dict], kinds: dict[str, dict[str, str]] | None = None, max_items: int = 64):
    """Videos x checklist items, 1 = yes, 0 = no, NaN = missing or not asked (the ``max_items`` most asked).

    With ``kinds`` (query id -> {question id -> kind}) the columns are kinds and a cell is the share of
    "yes" among that video's items of the kind: use it when question ids differ from query to query.
    """
    import pandas as pd

    value = {"yes": 1.0, "no": 0.0}
    rows = []
    for v in scored:
        if kinds is None:
            rows.append({q: value.get(a) for q, a in v["answers"].items()})
            continue
        by_kind: dict[str, list] = defaultdict(list)
        for q, a in v["answers"].items():
            if a in value:
                by_kind[kinds[v["id"]].get(q, q)].append(value[a])
        rows.append({k: sum(xs) / len(xs) for k, xs in by_kind.items()})
    table = pd.DataFrame(rows, index=[v["key"] for v in scored], dtype=float)
    return table[table.notna().sum().sort_values(ascending=False).index[:max_items]]
