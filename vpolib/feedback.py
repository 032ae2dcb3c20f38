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

from vpolib.checklist import answer_value
from vpolib.io import append_jsonl, done_keys, read_jsonl, write_jsonl
from vpolib.progress import track
from vpolib.templates import optimize_messages

# Why an unordered pair of videos of one query did not become a preference pair (checked in this order).
MISSING = "missing_items"  # an answer is missing or the two checklists differ: dominance is unverifiable
CONFLICT = "not_dominant"  # each video wins some item
SAME = "no_win"  # identical answers on every item
MARGIN = "within_margin"  # dominant, but the score gap is not larger than the margin
REASONS = (MISSING, CONFLICT, SAME, MARGIN)


def video_seed(seed: int, query_id: str) -> int:
    """A stable per-query seed (not the position in the run): every video of a query, whichever prompt or
    method renders it and in whichever batch, starts from the same noise."""
    return (seed * 1_000_003 + zlib.crc32(query_id.encode())) % 2**31


def reward_seed(seed: int, query_id: str, index: int, round_: int = 1) -> int:
    """The noise of seed ``index`` for a query's videos in preference round ``round_``: keyed by query id, seed
    index and round (never by position), so a resumed run renders the same videos. Index 0 of round 1 is
    :func:`video_seed`, the one noise the paper's recipe renders with."""
    if index == 0 and round_ == 1:
        return video_seed(seed, query_id)
    return video_seed(seed, f"{query_id}#{index}@{round_}")


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
    sampler: Callable[[list[str], list[str], list[str | None]], list[list[str]]],
    batch_size: int = 8,
) -> list[dict]:
    """k optimizer prompts per query, appended to ``path`` as ``{"id", "query", "source", "prompts"}`` (resumable).

    ``sampler(queries, ids, sources) -> k prompts each``, seeded from the batch's ids. Batches are fixed by position in
    ``records`` and only a batch with a missing query is sampled again (whole, so with the same seed and
    padding), writing only what is missing: a resumed run writes what an uninterrupted one would.
    """

    done = done_keys(path, "id")
    batches = [records[i : i + batch_size] for i in range(0, len(records), batch_size)]
    todo = [b for b in batches if any(r["id"] not in done for r in b)]
    for batch in track(todo, desc="sampling prompts"):
        outs = sampler(
            [r["query"] for r in batch], [r["id"] for r in batch], [r.get("source") for r in batch]
        )
        for rec, prompts in zip(batch, outs, strict=True):
            if rec["id"] not in done:
                row = {
                    "id": rec["id"],
                    "query": rec["query"],
                    "source": rec.get("source"),
                    "prompts": list(prompts),
                }
                append_jsonl(path, row)
    rows, _ = read_jsonl(path) if Path(path).exists() else ([], [])
    return rows


def text_feedback_queries(pool: list[dict], exclude: set[str], n: int) -> list[dict]:
    """Up to ``n`` pool queries (not in ``exclude``) for text-level feedback only: harmful-flagged ones first,
    up to half, so the optimizer meets the harmless principle's hard cases; then the others in pool order."""
    rest = [r for r in pool if r["id"] not in exclude]
    harmful = [r for r in rest if "harmful" in r.get("flags", [])][: n // 2]
    ids = {r["id"] for r in harmful}
    return harmful + [r for r in rest if r["id"] not in ids][: n - len(harmful)]


def contest(text: list[dict], video: list[dict], merged: list[dict]) -> dict:
    """For queries that have both a text and a video pair: how many kept each in the merge."""
    key = lambda p: p["query"].strip()  # noqa: E731 - the merge's own key
    both = {key(p) for p in text} & {key(p) for p in video}
    kept = Counter(p["source"] for p in merged if key(p) in both)
    return {"both": len(both), "text_won": kept.get("text", 0), "video_won": kept.get("video", 0)}


def judge_samples(rows: list[dict], records: dict[str, dict], judge, refiner, log_path: Path) -> list[dict]:
    """Every sampled prompt of every query judged, failures refined and judged again (resumable log): the
    critique rows of both recipes' text pairs (ids ``<query id>:sft<k>``)."""
    from vpolib.refine import candidate, critique_and_refine

    items = []
    for row in rows:
        rec = records[row["id"]]
        for k, prompt in enumerate(row["prompts"]):
            items.append({**candidate(rec, f"sft{k}", prompt), "id": f"{row['id']}:sft{k}"})
    return critique_and_refine(items, judge, refiner, log_path)


def text_feedback(
    rows: list[dict], records: dict[str, dict], judge, refiner, log_path: Path, instruction: str = "paper"
) -> tuple[list[dict], dict]:
    """Text-level pairs as the paper builds them: every sampled prompt of every query is judged, failures are
    refined and re-judged; (refined, original sample) is a pair, one per query (its first failing sample whose
    refinement passed). Returns ``(pairs, counts)``; the log is resumable."""
    return paper_text_pairs(judge_samples(rows, records, judge, refiner, log_path), instruction)


def paper_text_pairs(logged: list[dict], instruction: str = "paper") -> tuple[list[dict], dict]:
    """The paper's text pairs from :func:`judge_samples`' rows: (refinement, its sample), one per query."""
    pairs, seen = [], set()
    for r in logged:
        if r["status"] == "refined" and r["query_id"] not in seen:
            seen.add(r["query_id"])
            pairs.append(
                {
                    "id": r["query_id"],
                    "query": r["query"],
                    "prompt": optimize_messages(r["query"], instruction, r.get("source")),
                    "chosen": [{"role": "assistant", "content": r["refined"]}],
                    "rejected": [{"role": "assistant", "content": r["prompt"]}],
                    "source": "text",
                    "why": "; ".join(r["verdict"]["reasons"]),
                }
            )
    counts = Counter(r["status"] for r in logged)
    return pairs, {
        "samples": len(logged),
        **{k: counts.get(k, 0) for k in ("pass", "refined", "refine_failed", "unparsable")},
        "queries_with_pair": len(pairs),
    }


def render_and_score(
    rows: list[dict],
    backend,
    out_dir: Path,
    seed: int,
    save_mp4: bool = False,
    batch: int = 32,
    seeds: int = 1,
    round_: int = 1,
) -> list[dict]:
    """Render each query's prompts, score every video against the ORIGINAL query (``out_dir/scores.jsonl``).

    Each prompt is rendered with ``seeds`` noise seeds (:func:`reward_seed`: keyed by query id,
    seed index and ``round_``); all k prompts of a query share them, so they differ only by their prompt. Seed 0
    of round 1 is ``video_seed(seed, id)``, the paper recipe's one render. Videos are rendered ``batch`` at a time
    in chunks fixed by position; a chunk with a missing video is rendered again whole and only what is missing is
    written, so a resumed run writes what an uninterrupted one would. Each query's checklist goes to
    ``checklists.jsonl``; a chunk whose rendering or scoring fails is recorded in ``skips.jsonl`` and skipped, and
    finished work is kept. GIFs are saved for seed 0. ``backend=None``: the videos were rendered and scored by
    :func:`run_jobs`, and only read here.
    """
    from vpolib.video import media_path

    out_dir = Path(out_dir)
    scores, checklists = out_dir / "scores.jsonl", out_dir / "checklists.jsonl"
    done, listed = done_keys(scores, "key"), done_keys(checklists, "id")
    key = lambda row, k, s: f"{row['id']}/{k}" + (f"#{s}" if s else "")  # noqa: E731 - seed 0: the paper's key
    videos = [(row, k, s) for row in rows for k in range(len(row["prompts"])) for s in range(seeds)]
    chunks = [videos[i : i + batch] for i in range(0, len(videos), batch)]
    todo = [c for c in chunks if any(key(*v) not in done for v in c)]
    if todo and backend is None:
        missing = sum(key(*v) not in done for c in todo for v in c)
        raise RuntimeError(f"{missing} videos are missing from {scores}: rerun the render and scoring jobs")
    questions: dict[str, list] = {}
    for chunk in track(todo, desc="render + score"):
        try:
            for row, _, _ in chunk:
                if row["id"] not in questions:
                    questions[row["id"]] = backend.checklist(row["query"])
                if row["id"] not in listed:
                    append_jsonl(
                        checklists,
                        {
                            "id": row["id"],
                            "query": row["query"],
                            "questions": [
                                {"id": str(q.id), "text": q.text, "weight": q.weight, "kind": q.kind}
                                for q in questions[row["id"]]
                            ],
                        },
                    )
                    listed.add(row["id"])
            clips = backend.render(
                [row["prompts"][k] for row, k, _ in chunk],
                [reward_seed(seed, row["id"], s, round_) for row, _, s in chunk],
            )  # [B, F, H, W, 3]
            for (row, k, s), clip in zip(chunk, clips, strict=True):
                if key(row, k, s) in done:
                    continue
                gif = media_path(out_dir, row["id"], k, "gif")
                if s == 0:
                    backend.save(clip, gif, save_mp4)
                append_jsonl(
                    scores,
                    {
                        "key": key(row, k, s),
                        "id": row["id"],
                        "k": k,
                        "seed_index": s,
                        "query": row["query"],
                        "source": row.get("source"),
                        "prompt": row["prompts"][k],
                        "video": str(gif.relative_to(out_dir)),
                        **backend.score(questions[row["id"]], clip),
                    },
                )
                done.add(key(row, k, s))
        except Exception as err:  # a failing chunk is a recorded skip, not a lost run
            for qid in dict.fromkeys(row["id"] for row, _, _ in chunk):
                append_jsonl(out_dir / "skips.jsonl", {"id": qid, "reason": f"{type(err).__name__}: {err}"})
    return read_jsonl(scores)[0] if scores.exists() else []


def run_jobs(run_dir: Path, profile: str, overrides: dict, cfg, rows: list[dict]) -> list[dict]:
    """The full profile's render and score of ``rows`` (written to ``render_queue.jsonl``): ``accelerate
    launch -m vpolib.video render``, then the VisionReward job (``fb.visionreward_launcher``, its own
    environment, ``cfg.video``'s reward), logs streamed. Both are sharded and resumable, and write the ``scores.jsonl`` /
    ``checklists.jsonl`` that :func:`render_and_score` then finds done. Returns the scored videos."""
    import json
    import os
    import shlex
    import sys

    from vpolib.paths import REPO_ROOT
    from vpolib.progress import run_streamed

    fb, vid = cfg.feedback, cfg.video
    run_dir = Path(run_dir).resolve()
    queue = write_jsonl(run_dir / "04_feedback" / "render_queue.jsonl", rows)
    sets = [f"--set={k}={json.dumps(v)}" for k, v in overrides.items()]  # JSON is YAML: parse_sets reads it
    procs = ["--num_processes", str(fb.render_processes)] if fb.render_processes else []
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    launch = [sys.executable, "-m", "accelerate.commands.launch", *procs]
    run_streamed(
        [
            *launch,
            "-m",
            "vpolib.video",
            "render",
            "--run-dir",
            run_dir,
            "--prompts",
            queue,
            "--profile",
            profile,
            *sets,
        ],
        REPO_ROOT,
        env,
    )
    checklist = "visionreward" if vid.reward == "visionreward" else "frame-stats"
    score = [*shlex.split(fb.visionreward_launcher), "-m", "vpolib.visionreward", "--run-dir", run_dir]
    run_streamed(
        [*score, "--checklist", checklist, "--model", vid.reward_model, "--dtype", vid.dtype], REPO_ROOT, env
    )
    return read_jsonl(run_dir / "04_feedback" / "scores.jsonl")[0]


def scoring_backend(cfg, run_dir: Path, profile: str, overrides: dict, rows: list[dict], texts: list[str]):
    """The video backend that renders and scores 04's videos in this process, or ``None`` after
    :func:`run_jobs` has rendered and scored ``rows`` as sharded jobs (``feedback.render_jobs``)."""
    if cfg.feedback.render_jobs:
        run_jobs(run_dir, profile, overrides, cfg, rows)
        return None
    from vpolib.video import make_video_backend

    return make_video_backend(cfg, texts=texts)


def one_video(row: dict, backend, out_dir: Path, seed: int) -> tuple[list, dict]:
    """``(questions, result)`` for a query's first video: rendered and scored here, or (``backend=None``) read
    from the files :func:`run_jobs` wrote."""
    from vpolib.video import Question

    if backend is None:
        result = next(
            v for v in read_jsonl(Path(out_dir) / "scores.jsonl")[0] if v["key"] == f"{row['id']}/0"
        )
        listed = next(c for c in read_jsonl(Path(out_dir) / "checklists.jsonl")[0] if c["id"] == row["id"])
        return [Question(**q) for q in listed["questions"]], result
    questions = backend.checklist(row["query"])
    clip = backend.render([row["prompts"][0]], [video_seed(seed, row["id"])])[0]  # [F, H, W, 3] uint8
    return questions, backend.score(questions, clip)


def refined_vs_original(text_pairs: list[dict], scored: list[dict], backend, seed: int) -> list[dict]:
    """Video reward of each text pair's refined prompt next to its original sample's, same noise, same checklist.

    For the text pairs whose original (rejected) sample was rendered and scored: does the text-level repair also
    help the video? Returns ``{"id", "original", "refined"}`` rewards as fractions of the checklist maximum.
    With ``backend=None`` (the videos came from :func:`run_jobs`) nothing is rendered here: ``[]``.
    """
    if backend is None:
        return []
    by_prompt = {(v["id"], v["prompt"]): v for v in scored}
    todo = [
        (p, by_prompt[(p["id"], p["rejected"][0]["content"])])
        for p in text_pairs
        if (p["id"], p["rejected"][0]["content"]) in by_prompt
    ]
    if not todo:
        return []
    clips = backend.render(
        [p["chosen"][0]["content"] for p, _ in todo], [video_seed(seed, p["id"]) for p, _ in todo]
    )
    out = []
    for (p, original), clip in zip(todo, clips, strict=True):
        res = backend.score(backend.checklist(original["query"]), clip)
        out.append(
            {
                "id": p["id"],
                "original": original["score"] / original["max_score"],
                "refined": res["score"] / res["max_score"],
            }
        )
    return out


def answer_matrix(scored: list[dict], kinds: dict[str, dict[str, str]] | None = None, max_items: int = 64):
    """Videos x checklist items, 1 = yes, 0 = no, NaN = missing or not asked (the ``max_items`` most asked).

    With ``kinds`` (query id -> {question id -> kind}) the columns are kinds and a cell is the share of
    "yes" among that video's items of the kind: use it when question ids differ from query to query.
    """
    import pandas as pd

    rows = []
    for v in scored:
        if kinds is None:
            rows.append({q: answer_value(a) for q, a in v["answers"].items()})
            continue
        by_kind: dict[str, list] = defaultdict(list)
        for q, a in v["answers"].items():
            if answer_value(a) is not None:
                by_kind[kinds[v["id"]].get(q, q)].append(answer_value(a))
        rows.append({k: sum(xs) / len(xs) for k, xs in by_kind.items()})
    table = pd.DataFrame(rows, index=[v["key"] for v in scored], dtype=float)
    return table[table.notna().sum().sort_values(ascending=False).index[:max_items]]


def feedback_queries(pool: list[dict], fb) -> tuple[list[dict], list[dict], int]:
    """The DPO pool's queries for this stage: ``(rendered, text_only, n_renderable)``.

    ``rendered``: the first ``feedback.n_queries`` of the queries with source ``feedback.queries`` (``all``: any),
    which get video and text feedback; ``text_only``: up to ``feedback.n_text_queries`` others for text feedback
    only (:func:`text_feedback_queries`). Records without a query or an id are left out; no renderable query
    stops here with the pool's size.
    """
    pool = [r for r in pool if str(r.get("query") or "").strip() and r.get("id")]
    renderable = [r for r in pool if fb.queries == "all" or r.get("source") == fb.queries]
    rendered = renderable[: fb.n_queries]
    if not rendered:
        raise ValueError(
            f"no usable queries with feedback.queries={fb.queries!r} in the DPO pool "
            f"({len(pool)} records): did notebook 01 add ShapesWorld queries?"
        )
    n_text = fb.n_text_queries if fb.text_feedback else 0
    return rendered, text_feedback_queries(pool, {r["id"] for r in renderable}, n_text), len(renderable)


def skipped_queries(out_dir: Path, scored: list[dict]) -> dict[str, str]:
    """Queries of ``out_dir/skips.jsonl`` that have no scored video, with the reason; nothing scored at all
    stops here."""
    path = Path(out_dir) / "skips.jsonl"
    skips = read_jsonl(path)[0] if path.exists() else []
    done = {v["id"] for v in scored}
    skipped = {s["id"]: s["reason"] for s in skips if s["id"] not in done}
    if not scored:
        raise RuntimeError(f"no video was scored ({len(skipped)} queries skipped): see {path}")
    return skipped


def score_frame(scored: list[dict]):
    """Scored videos as a table, with ``fraction`` = score / max_score."""
    import pandas as pd

    frame = pd.DataFrame(scored)
    frame["fraction"] = frame["score"] / frame["max_score"]
    return frame


def read_checklists(out_dir: Path) -> dict[str, list[dict]]:
    """Each query's checklist as :func:`render_and_score` listed it: query id -> questions."""
    return {c["id"]: c["questions"] for c in read_jsonl(Path(out_dir) / "checklists.jsonl")[0]}


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


def pair_flow(counts: dict, pairs: list[dict], text: list[dict], contest: dict, merge: dict, cap: int):
    """The path from compared videos to merged pairs, one step a row (``counts``: :func:`pair_counts`)."""
    import pandas as pd

    rows = [
        ("video pairs compared (unordered, same query)", counts["video_pairs_compared"]),
        *[(f"  dropped: {reason}", n) for reason, n in counts["video_pairs_dropped"].items()],
        ("valid video pairs", counts["video_pairs_valid"]),
        ("queries with at least one valid pair", len({p["id"] for p in pairs})),
        ("queries with under 2 videos", counts["queries_too_few_videos"]),
        (f"video pairs after the cap ({cap}/query) -> video_pairs.jsonl", counts["video_pairs_written"]),
        ("text pairs (on-policy: refined SFT samples)", len(text)),
        ("queries with both a text and a video pair", contest["both"]),
        ("  ... kept the text pair / the video pair", f"{contest['text_won']} / {contest['video_won']}"),
        *[
            (f"merged: {src} kept / dropped by the cap", f"{s['kept']} / {s['dropped_cap']}")
            for src, s in merge.items()
        ],
        ("merged pairs -> pairs.jsonl", sum(s["kept"] for s in merge.values())),
    ]
    return pd.DataFrame(rows, columns=["step", "count"])


def refined_summary(rows: list[dict]) -> dict:
    """:func:`refined_vs_original` in numbers: pairs compared, mean reward of the original and the refined
    prompt's video (4 decimals; None without pairs), and how many refinements scored better or worse."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["id", "original", "refined"])
    gain = frame["refined"] - frame["original"]
    mean = lambda col: round(float(frame[col].mean()), 4) if len(frame) else None  # noqa: E731
    return {
        "n": len(frame),
        "original": mean("original"),
        "refined": mean("refined"),
        "better": int((gain > 0).sum()),
        "worse": int((gain < 0).sum()),
    }


MARKS = {"yes": "✓", "no": "✗", None: "?"}


def gallery(
    scored: list[dict], checklists: dict, pairs: list[dict], merged: list[dict], margin: float, size: int
):
    """The gallery's queries (those with a valid pair first), each as ``(heading, html, verdicts)``: the k videos
    with their prompt, answers (✓ yes, ✗ no, ? missing) and score as an HTML table, then the verdict on every
    pair of videos and the pair the merge kept, in Markdown."""
    import pandas as pd

    groups = group_by_query(scored)
    with_pair = [q for q in groups if any(p["id"] == q for p in pairs)]
    kept_video = {p["id"]: p["why"] for p in merged if p["source"] == "video"}
    out = []
    for qid in (with_pair + [q for q in groups if q not in with_pair])[:size]:
        group, questions = groups[qid], checklists.get(qid, [])
        table = pd.DataFrame(
            [
                {
                    "k": v["k"],
                    "video": f'<img src="{v["video"]}" width="96">',
                    "prompt": v["prompt"][:240],
                    **{q["text"][:40]: MARKS[v["answers"].get(q["id"])] for q in questions[:12]},
                    "score": f"{v['score']:.3g} / {v['max_score']:.3g}",
                }
                for v in group
            ]
        )
        lines = [
            "- pair: " + explain(v["chosen"], v["rejected"])
            if v["reason"] is None
            else f"- k={v['chosen']['k']} vs k={v['rejected']['k']}: no pair ({v['reason']})"
            for v in verdicts(group, margin)
        ]
        kept = kept_video.get(qid) or ("slot taken by a text pair" if qid in with_pair else "none")
        out.append(
            (
                f"### `{qid}` · {group[0]['query']}",
                table.to_html(escape=False, index=False),
                "\n".join(lines) + f"\n\n**Pair kept in the merge:** {kept}",
            )
        )
    return out


def plot_scores(frame, dropped: Counter, n_pairs: int, margin: float):
    """Three panels: video score / max_score, best minus worst video per query (the margin dashed), and the
    verdicts on video pairs (:func:`video_pairs`' drop counts and the pairs). Returns the figure."""
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd
    import seaborn as sns

    spread = frame.groupby("id")["fraction"].agg(lambda s: s.max() - s.min())
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.2))
    sns.histplot(frame["fraction"], bins=np.linspace(0, 1, 11), ax=axes[0])
    axes[0].set(title="video score / max_score", xlabel="fraction")
    sns.histplot(spread, bins=np.linspace(0, 1, 11), ax=axes[1])
    axes[1].axvline(margin, ls="--", c="k")
    axes[1].set(title="best minus worst video, per query", xlabel="fraction")
    reasons = pd.Series({r: dropped.get(r, 0) for r in (*REASONS, "too_few_videos")} | {"pair": n_pairs})
    sns.barplot(x=reasons.values, y=reasons.index, ax=axes[2])
    axes[2].set(title="verdicts on video pairs", xlabel="count", ylabel="")
    fig.tight_layout()
    return fig


def plot_item_agreement(scored: list[dict], checklists: dict):
    """The 'yes' rate per checklist item and the item-item correlation over all videos (by question kind when
    question ids differ from query to query, as in ShapesWorld's checklists). Returns the figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    kinds = {qid: {q["id"]: q["kind"] for q in qs} for qid, qs in checklists.items()}
    by_kind = (
        len({k for ks in kinds.values() for k in ks.values()}) > 1
    )  # ids differ per query: compare kinds
    answers = answer_matrix(scored, kinds if by_kind else None)
    labels = {} if by_kind else {q["id"]: q["text"] for qs in checklists.values() for q in qs}
    fig, axes = plt.subplots(1, 2, figsize=(14, max(3, 0.35 * len(answers.columns) + 1.5)))
    names = [f"{c}: {labels[c][:45]}" if c in labels else c for c in answers.columns]
    sns.barplot(x=answers.mean().values, y=names, ax=axes[0])
    axes[0].set(title="'yes' rate per item", xlabel="fraction of videos", ylabel="", xlim=(0, 1))
    sns.heatmap(answers.corr(min_periods=5), vmin=-1, vmax=1, cmap="vlag", ax=axes[1])
    axes[1].set(title="item-item correlation (blank = constant item)")
    fig.tight_layout()
    return fig
