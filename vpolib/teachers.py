"""Teachers: the first prompt each SFT query gets, before the judge critiques it.

VBench's shipped GPT-4o / Wan2.1 expansions, the ShapesWorld teacher (fluent, flawed like an LLM rewriter), the
world's own captions, the templated teacher on real queries (:mod:`vpolib.compose`) and an LLM prompted few-shot.
Each writes :func:`candidate` dicts; :mod:`vpolib.refine` judges and refines them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vpolib.backends import CachedBackend, GenParams, check_first_batch, make_backend
from vpolib.compose import compose_prompt
from vpolib.data import interleave, is_harmful
from vpolib.safety_lexicon import harmful_terms
from vpolib.templates import few_shot_messages

TEACHER_FIX = (
    "The teacher model returned no usable prompt. Use a stronger model (`refine.teacher_backend`) or drop "
    'the LLM teacher (`refine.teachers` without "llm").'
)


def candidate(record: dict, teacher: str, prompt: str | None) -> dict:
    """One teacher prompt for one query, with the query fields the judges and refiners need."""
    return {
        "id": f"{record['id']}:{teacher}",
        "query_id": record["id"],
        "query": record["query"],
        "content": record.get("content") or record["query"],
        "tags": record.get("tags") or [],
        "harmful_terms": record.get("harmful_terms", harmful_terms(record["query"])),
        "source": record.get("source", "vbench"),
        "teacher": teacher,
        "prompt": prompt,
    }


def vbench_candidates(pairs: list[dict], sets: list[str], limit: int | None) -> list[dict]:
    """VBench queries with their shipped GPT-4o / Wan2.1 expansions (real teacher outputs)."""
    out = []
    for name in sets:
        rows = [r for r in pairs if r.get("set") == name][:limit]
        out += [candidate(r, t, r[t]) for r in rows for t in ("gpt4o", "wan") if r.get(t)]
    return out


def shapes_teacher_candidates(records: list[dict], seed: int, rates: dict | None = None) -> list[dict]:
    """ShapesWorld queries with the ShapesWorld teacher's prompt (fluent, flawed like an LLM rewriter's); each
    candidate lists the failure modes its prompt contains under ``teacher_failures``."""
    # vpolib.shapesworld's __init__ loads torch and diffusers (~10 s): imported by the one teacher that needs it
    from vpolib.shapesworld.teacher import TeacherRates, teacher_prompt

    out = []
    for r in records:
        prompt, failures = teacher_prompt(r["query"], seed, TeacherRates(**(rates or {})))
        out.append({**candidate(r, "shapes", prompt), "teacher_failures": failures})
    return out


def caption_candidates(records: list[dict]) -> list[dict]:
    """ShapesWorld queries with the world's own detailed caption as the teacher prompt (critiqued like any other)."""
    return [candidate(r, "caption", r["caption"]) for r in records if r.get("caption")]


def few_shot_examples(pairs: list[dict], k: int) -> list[tuple[str, str]]:
    """The ``k`` shortest VBench (query, GPT-4o prompt) pairs: real teacher style at the least context cost."""
    rows = sorted((r for r in pairs if r.get("gpt4o")), key=lambda r: (len(r["gpt4o"]), r["id"]))
    return [(r["query"], r["gpt4o"]) for r in rows[:k]]


def llm_teacher_candidates(
    records: list[dict], backend, examples: list[tuple[str, str]], params: GenParams, check_first: int = 8
) -> tuple[list[dict], int]:
    """Few-shot teacher prompts (n per query) through any backend; returns (candidates, failed queries).

    The first ``check_first`` queries go first: if most of them failed or came back empty, the run
    stops with a clear message (:func:`~vpolib.backends.check_first_batch`; 0: no check).
    """
    convs = [few_shot_messages(r["query"], examples) for r in records]
    k = check_first if check_first > 0 else 0
    outs = backend.generate(convs[:k], params) if k else []
    if k and outs:
        check_first_batch(
            f"LLM teacher {backend.name}",
            [t[0] if t else None for t in outs],
            [t is None or any(x.strip() for x in t) for t in outs],
            TEACHER_FIX,
            getattr(backend, "errors", None),
        )
    outs += backend.generate(convs[k:], params) if convs[k:] else []
    out, failed = [], 0
    for rec, texts in zip(records, outs, strict=True):
        if texts is None:
            failed += 1
            continue
        out += [candidate(rec, f"llm{j}", t) for j, t in enumerate(texts)]
    return out, failed


def real_queries(pool: list[dict], n: int | None, harmful_share: float = 0.0) -> list[dict]:
    """The real queries the compose and LLM teachers write for: ``n`` of the pool (all: None), at least
    ``harmful_share`` of them harmful-flagged where the pool has that many, spread evenly through the list. In
    the pool's order harmful ones are ~2%: too few examples of dropping harmful wording for the optimizer."""
    real = [r for r in pool if r.get("source") != "shapes"]
    n = len(real) if n is None else min(n, len(real))
    harmful = [r for r in real if is_harmful(r)][: round(n * harmful_share)]
    taken = {id(r) for r in harmful}
    others = [r for r in real if id(r) not in taken][: n - len(harmful)]
    return interleave(others, harmful)


def teacher_candidates(cfg, pool: list[dict], vbench: list[dict], cache_dir: Path) -> tuple[list[dict], dict]:
    """Every teacher's first prompts for the SFT pool: VBench's shipped expansions, the ShapesWorld teacher, the
    world's captions, the templated teacher on ``refine.n_queries`` real queries (:func:`real_queries`, :mod:`vpolib.compose`),
    and an LLM prompted few-shot on the same queries (its replies cached in ``cache_dir/teacher.jsonl``, so a killed
    run resumes). Returns ``(candidates, teacher stats)``."""
    rcfg = cfg.refine
    shapes = [r for r in pool if r.get("source") == "shapes"]
    candidates, stats = [], {"llm_failed": 0, "compose_empty": 0}
    if "vbench" in rcfg.teachers:
        candidates += vbench_candidates(vbench, rcfg.vbench_sets, rcfg.vbench_limit)
    if "shapes" in rcfg.teachers:
        candidates += shapes_teacher_candidates(shapes, cfg.seed, cfg.shapesworld.teacher_rates)
    if "caption" in rcfg.teachers:
        candidates += caption_candidates(shapes)
    real = real_queries(pool, rcfg.n_queries, rcfg.harmful_share)
    if "compose" in rcfg.teachers:  # the templated teacher: the query's own words and a setting sentence
        composed = [candidate(r, "compose", compose_prompt(r, cfg.seed)) for r in real]
        stats["compose_empty"] = sum(c["prompt"] is None for c in composed)  # nothing left once cleaned
        candidates += [c for c in composed if c["prompt"] is not None]
    examples = few_shot_examples(vbench, rcfg.n_shots)
    if "llm" in rcfg.teachers and real and rcfg.teacher_backend:
        teacher = CachedBackend(
            make_backend(rcfg.teacher_backend, rcfg.batch_size, rcfg.concurrency, rcfg.teacher_dtype),
            Path(cache_dir) / "teacher.jsonl",
            chunk_size=rcfg.batch_size,
            progress=True,
        )
        params = GenParams(
            temperature=rcfg.temperature,
            top_p=rcfg.top_p,
            n=rcfg.samples_per_query,
            max_new_tokens=rcfg.max_new_tokens,
        )
        llm, stats["llm_failed"] = llm_teacher_candidates(
            real, teacher, examples, params, check_first=rcfg.check_first
        )
        candidates += llm
        stats.update(teacher.stats)
    return candidates, stats


def teacher_modes(rows: list[dict]):
    """The ShapesWorld teacher's failure modes: per mode (``none`` for a faithful prompt), how many of its prompts
    have it, how often the judge passed them, and its rate (prompts with it / the teacher's prompts)."""
    shapes = [r for r in rows if r["teacher"] == "shapes"]
    modes = pd.DataFrame(
        [
            {"mode": m, "passed": r["status"] == "pass"}
            for r in shapes
            for m in r.get("teacher_failures") or ["none"]
        ]
    )
    table = (
        modes.groupby("mode")["passed"].agg(["size", "mean"])
        if len(modes)
        else pd.DataFrame(columns=["size", "mean"])
    )
    table = table.rename(columns={"size": "prompts", "mean": "judge pass rate"})
    table["rate"] = (table["prompts"] / max(len(shapes), 1)).round(3)
    return table
