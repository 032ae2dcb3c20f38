"""Stage 06 data collection: every method's held-out prompts, judged and (for ShapesWorld) rendered and scored.

Both loops append one JSONL record per (method, query id) as it finishes and skip finished keys on a
rerun, so a killed evaluation resumes. Records have the shapes :mod:`vpolib.analysis` reads.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from vpolib.analysis import is_refusal
from vpolib.io import append_jsonl, read_jsonl
from vpolib.progress import track
from vpolib.video import media_path

TEXT_FIELDS = ("query", "content", "tags", "harmful_terms", "source")


def key(method: str, query_id: str) -> str:
    return f"{method}|{query_id}"


def keep(records: list[dict], prompts: dict) -> list[dict]:
    """The records of ``prompts``' (method, query id) pairs only (``{method: ids}``; a resumed file may hold
    more)."""
    wanted = {key(m, q) for m, ids in prompts.items() for q in ids}
    return [r for r in records if r["key"] in wanted]


def split_queries(
    heldout: list[dict], trained: dict, required: list[str], n_text: int, n_video: int
) -> tuple[list[dict], list[dict], list[dict]]:
    """``(common, real, shapes)``: the held-out queries every required method prompted, then the first
    ``n_text`` real ones (text metrics) and the first ``n_video`` ShapesWorld ones (video metrics)."""
    common = [r for r in heldout if all(r["id"] in trained[m] for m in required)]
    real = [r for r in common if r.get("source") != "shapes"][:n_text]
    shapes = [r for r in common if r.get("source") == "shapes"][:n_video]
    return common, real, shapes


def baseline_prompts(cfg, real: list[dict], shapes: list[dict], pairs_path: Path, cache_path: Path):
    """``({method: {id: prompt}}, notes)`` of ``cfg.analysis.baselines``: the raw query, the rule expansion and
    the few-shot teacher (ShapesWorld's teacher on its queries; on real ones an LLM with
    ``analysis.fewshot_shots`` VBench (query, GPT-4o) examples when ``analysis.fewshot_backend`` is set, its generations cached in ``cache_path``)."""
    from vpolib import rewriters
    from vpolib.backends import CachedBackend, GenParams, make_backend

    acfg, notes, prompts = cfg.analysis, [], {}
    ids, texts = [r["id"] for r in real + shapes], [r["query"] for r in real + shapes]
    if "raw" in acfg.baselines:
        prompts["raw"] = dict(zip(ids, rewriters.raw_query(texts), strict=True))
    if "rule" in acfg.baselines:
        prompts["rule"] = dict(zip(ids, rewriters.rule_expansion(texts), strict=True))
    if "fewshot" not in acfg.baselines:
        return prompts, notes
    shapes_queries = {r["id"]: r["query"] for r in shapes}
    prompts["fewshot"] = rewriters.shapes_teacher(shapes_queries, cfg.seed, cfg.shapesworld.teacher_rates)
    if acfg.fewshot_backend and real:
        pairs, _ = read_jsonl(pairs_path)
        examples = [(p["query"], p["gpt4o"]) for p in pairs if p.get("gpt4o")][: acfg.fewshot_shots]
        backend = make_backend(acfg.fewshot_backend, cfg.generation_batch, dtype=acfg.fewshot_dtype)
        backend = CachedBackend(backend, cache_path, chunk_size=cfg.generation_batch)
        params = GenParams(temperature=0.7, top_p=0.9, n=1, max_new_tokens=acfg.fewshot_max_new_tokens)
        out = rewriters.FewShotRewriter(backend, examples, params)([r["query"] for r in real])
        prompts["fewshot"].update({r["id"]: p for r, p in zip(real, out, strict=True) if p is not None})
        if sum(p is None for p in out):
            notes.append(f"fewshot: {sum(p is None for p in out)} generation(s) failed (skipped)")
    elif real:
        notes.append(
            "fewshot baseline on real queries skipped: analysis.fewshot_backend is not set in this profile"
        )
    return prompts, notes


def video_prompts(prompts: dict[str, dict[str, str]], shapes: list[dict], caption: bool) -> dict:
    """Each method's prompts for the ShapesWorld queries, plus the scene's own caption as the ``caption``
    method when ``caption`` (an upper bound); methods without any prompt are left out."""
    out = {m: {r["id"]: p[r["id"]] for r in shapes if r["id"] in p} for m, p in prompts.items()}
    if caption:
        out["caption"] = {r["id"]: r["caption"] for r in shapes if r.get("caption")}
    return {m: p for m, p in out.items() if p}


def trained_prompts(run_dir: Path, required: list[str]) -> tuple[dict[str, dict[str, str]], list[str]]:
    """``{method: {id: prompt}}`` from every ``heldout_prompts*.jsonl`` of stages 03 and 05 (ablations too).

    The method is each record's ``"method"`` field. Raises if a ``required`` method has no prompts.
    """
    prompts: dict[str, dict[str, str]] = defaultdict(dict)
    notes = []
    for path in sorted(
        [*run_dir.glob("03_*/**/heldout_prompts*.jsonl"), *run_dir.glob("05_*/**/heldout_prompts*.jsonl")]
    ):
        records, errors = read_jsonl(path)
        if errors:
            notes.append(f"{path.relative_to(run_dir)}: {len(errors)} malformed line(s) skipped")
        for r in records:
            if "id" in r and "method" in r:
                prompts[r["method"]][r["id"]] = r.get("prompt") or ""
    missing = [m for m in required if not prompts.get(m)]
    if missing:
        raise FileNotFoundError(
            f"no held-out prompts for required method(s) {missing} under {run_dir}/03_*/ or 05_*/ "
            f"(found: {sorted(prompts) or 'none'}): run notebooks 03 and 05 first"
        )
    return dict(prompts), notes


def _reasons(codes: list[str]) -> dict[str, list[str]]:
    """``["aligned:missing_content", "llm:no"]`` -> ``{"aligned": ["missing_content"], "llm": ["no"]}``."""
    out: dict[str, list[str]] = defaultdict(list)
    for code in codes:
        principle, _, why = code.partition(":")
        out[principle].append(why or principle)
    return dict(out)


def text_record(item: dict, method: str, prompt: str, verdict) -> dict:
    """One judged prompt in :mod:`vpolib.analysis` form. Principles the judge left unknown (None) are omitted."""
    return {
        "key": key(method, item["id"]),
        "id": item["id"],
        "method": method,
        "query": item["query"],
        "prompt": prompt,
        "source": item.get("source"),
        "harmful": "harmful" in (item.get("flags") or []),
        "refusal": is_refusal(prompt),
        "verdict": verdict.passed,
        "passed": {p: ok for p, ok in verdict.principles.items() if ok is not None},
        "reasons": _reasons(verdict.reasons),
        "details": verdict.details,
    }


def judge_prompts(
    judge, heldout: list[dict], prompts: dict[str, dict[str, str]], path: Path, chunk: int = 64
) -> tuple[list[dict], dict]:
    """Judge every (method, held-out query) with a prompt; resumable via ``path``. Returns (records, counts).

    A chunk whose judge call raises is counted and left for the next run (nothing is recorded for it).
    """
    done = {r["key"] for r in read_jsonl(path)[0]} if path.exists() else set()
    todo = [
        (m, it)
        for m, by_id in prompts.items()
        for it in heldout
        if it["id"] in by_id and key(m, it["id"]) not in done
    ]
    counts = {"resumed": len(done), "judged": 0, "failed": 0}
    for start in track(range(0, len(todo), chunk), desc="judging", disable=not todo):
        batch = todo[start : start + chunk]
        items = [
            {**{f: it.get(f) for f in TEXT_FIELDS}, "id": it["id"], "prompt": prompts[m][it["id"]]}
            for m, it in batch
        ]
        try:
            verdicts = judge.judge(items)
        except Exception as err:  # noqa: BLE001 - a failing judge/API must not lose finished work
            counts["failed"] += len(batch)
            counts.setdefault("errors", []).append(f"{type(err).__name__}: {err}"[:300])
            continue
        for (m, it), v in zip(batch, verdicts, strict=True):
            append_jsonl(path, text_record(it, m, prompts[m][it["id"]], v))
            counts["judged"] += 1
    records = read_jsonl(path)[0] if path.exists() else []
    return records, counts


def score_videos(
    backend,
    queries: list[dict],
    prompts: dict[str, dict[str, str]],
    path: Path,
    media_dir: Path,
    seed_of,
    batch: int = 8,
) -> tuple[list[dict], dict]:
    """Render each method's prompt for each query and score it against the ORIGINAL query's checklist.

    Each query's video starts from its own noise (``seed_of(id)``), the same for every method, so each query
    sees the same starting noise whichever prompt renders it (paired comparison). Queries are cut into fixed
    chunks; a chunk is redone whole if any of its videos is missing (same seeds, same videos).
    """
    done = {r["key"] for r in read_jsonl(path)[0]} if path.exists() else set()
    checklists = {q["id"]: backend.checklist(q["query"]) for q in queries}
    chunks = [queries[i : i + batch] for i in range(0, len(queries), batch)]
    jobs = [
        (m, c)
        for m in prompts
        for c in chunks
        if any(q["id"] in prompts[m] and key(m, q["id"]) not in done for q in c)
    ]
    counts = {"resumed": len(done), "rendered": 0, "failed": 0}
    for method, chunk in track(jobs, desc="rendering", disable=not jobs):
        todo = [q for q in chunk if q["id"] in prompts[method]]
        try:
            videos = backend.render(
                [prompts[method][q["id"]] for q in todo], [seed_of(q["id"]) for q in todo]
            )
        except Exception as err:  # noqa: BLE001 - recorded; the rest of the evaluation goes on
            counts["failed"] += len(todo)
            counts.setdefault("errors", []).append(f"{method}: {type(err).__name__}: {err}"[:300])
            continue
        for q, video in zip(todo, videos, strict=True):  # video: [F, H, W, 3] uint8
            if key(method, q["id"]) in done:
                continue
            gif = media_path(media_dir, f"{method}_{q['id']}", 0, "gif")
            backend.save(video, gif)  # as stage 04 saves it
            res = backend.score(checklists[q["id"]], video)
            append_jsonl(
                path,
                {
                    "key": key(method, q["id"]),
                    "id": q["id"],
                    "method": method,
                    "query": q["query"],
                    "prompt": prompts[method][q["id"]],
                    **res,
                    "kinds": {str(x.id): x.kind for x in checklists[q["id"]]},
                    "gif": str(gif),
                },
            )
            counts["rendered"] += 1
    records = read_jsonl(path)[0] if path.exists() else []
    return records, counts
