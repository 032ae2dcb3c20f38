"""Stage 04's queries and samples: which DPO-pool queries get feedback, and the k prompts the optimizer samples.

The ``feedback.n_queries`` renderable queries get video and text feedback; up to ``feedback.n_text_queries`` others
text feedback only. Their samples are then scored as videos (:mod:`vpolib.scoring`) and judged as text
(:mod:`vpolib.text_feedback`), and the pairs built from both: on-policy (:mod:`vpolib.preference`) and the
paper's (:mod:`vpolib.dominance`, :func:`vpolib.text_feedback.paper_text_pairs`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vpolib.data import is_harmful
from vpolib.io import append_jsonl, done_keys, read_jsonl
from vpolib.progress import track


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
    n_harmful = fb.harmful_text_queries if fb.text_feedback else None
    text_only = text_feedback_queries(pool, {r["id"] for r in renderable}, n_text, n_harmful)
    return rendered, text_only, len(renderable)


def text_feedback_queries(
    pool: list[dict], exclude: set[str], n: int, n_harmful: int | None = None
) -> list[dict]:
    """Up to ``n`` pool queries (not in ``exclude``) for text-level feedback only: harmful-flagged ones first,
    up to half, so the optimizer meets the harmless principle's hard cases; then the others in pool order.
    ``n_harmful``: the harmful-flagged ones among them are then topped up to this many, next in pool order
    (appended: the first ``n`` stay as they were)."""
    rest = [r for r in pool if r["id"] not in exclude]
    harmful = [r for r in rest if is_harmful(r)]
    ids = {r["id"] for r in harmful[: n // 2]}
    picked = harmful[: n // 2] + [r for r in rest if r["id"] not in ids][: n - len(ids)]
    if n_harmful is None:
        return picked
    ids = {r["id"] for r in picked}
    extra = [r for r in harmful if r["id"] not in ids][: max(0, n_harmful - sum(map(is_harmful, picked)))]
    return picked + extra


def samples_per_query(record: dict, fb) -> int:
    """k for one query: ``feedback.harmful_samples_per_query`` for a harmful-flagged one where set, else
    ``feedback.samples_per_query``."""
    if is_harmful(record) and fb.harmful_samples_per_query:
        return fb.harmful_samples_per_query
    return fb.samples_per_query


def sample_all(
    records: list[dict], path: Path, make_sampler: Callable[[int, int], Callable], fb, generation_batch: int
) -> list[dict]:
    """:func:`sample_prompts` for queries of different k: one pass per k (the ``samples_per_query`` ones first,
    in ``records`` order), each with ``make_sampler(batch, k)`` and ``batch = generation_batch // k`` queries a call, into
    the one ``path``. With one k this is a single :func:`sample_prompts` call."""
    by_k: dict[int, list[dict]] = {}
    for r in records:
        by_k.setdefault(samples_per_query(r, fb), []).append(r)
    rows: list[dict] = []
    for k in sorted(by_k, key=lambda k: k != fb.samples_per_query):
        batch = max(1, generation_batch // k)
        rows = sample_prompts(by_k[k], path, make_sampler(batch, k), batch)
    return rows


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
