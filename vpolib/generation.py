"""Prompts from the optimizer: k samples per query (stage 04) and one greedy prompt per held-out query."""

from __future__ import annotations

import os
from pathlib import Path

from vpolib.backends import GenParams, OpenAIBackend, chat_generate
from vpolib.checkpoints import fingerprint, load_optimizer
from vpolib.io import append_jsonl, read_jsonl
from vpolib.progress import track
from vpolib.templates import optimize_messages


def batch_seed(seed: int, ids: list[str]) -> int:
    """The random seed of one generation batch, from the run seed and the batch's query ids (never from how
    far the random generator had got), so a resumed run samples exactly what an uninterrupted one would."""
    return int(fingerprint(seed, list(ids)), 16) % 2**31


def generate_prompts(
    model,
    tokenizer,
    queries: list[str],
    n: int = 4,
    temperature: float = 0.9,
    top_p: float = 0.9,
    max_new_tokens: int = 128,
    batch_size: int = 8,
    instruction: str = "paper",
    seed: int | None = None,
    sources: list[str | None] | None = None,
) -> list[list[str]]:
    """``n`` optimized prompts per query (``[len(queries)][n]``); greedy (n must be 1) at temperature 0.

    Each query is wrapped in VPO's optimization instruction (the SFT/DPO user turn). ``model`` is a causal
    LM (batched, left-padded HF generate) or, with ``tokenizer=None``, a text backend such as
    :class:`vpolib.backends.OpenAIBackend` in front of ``vllm serve`` (one request per query with ``n``
    choices). A failed request raises after the batch: callers that log per query id resume on rerun.
    With ``seed``, local sampling is seeded per batch of ``batch_size`` (see :func:`batch_seed`). ``sources``:
    each query's source, which names its video model in the instruction (:data:`vpolib.templates.TARGETS`).
    """
    import torch

    if temperature <= 0 and n != 1:
        raise ValueError("greedy decoding (temperature 0) gives one prompt per query: use n=1")
    params = GenParams(temperature=temperature, top_p=top_p, n=n, max_new_tokens=max_new_tokens)
    chats = [
        optimize_messages(q, instruction, s)
        for q, s in zip(queries, sources or [None] * len(queries), strict=True)
    ]
    if tokenizer is not None:
        out = []
        for start in range(0, len(queries), batch_size):
            if seed is not None:
                torch.manual_seed(batch_seed(seed, queries[start : start + batch_size]))
            out += chat_generate(model, tokenizer, chats[start : start + batch_size], params, batch_size)
        return out
    out = model.generate(chats, params)
    failed = [q for q, texts in zip(queries, out, strict=True) if texts is None]
    if failed:
        errors = getattr(model, "errors", [])[-3:]
        raise RuntimeError(f"{len(failed)} of {len(queries)} requests failed (rerun resumes): {errors}")
    return out


def prompt_source(
    feedback_cfg, model_dir: str | os.PathLike, device: str | None = None, dtype: str | None = None
):
    """``(model, tokenizer)`` for :func:`generate_prompts`: 03's model loaded here (``feedback.sampler:
    local``), or ``(OpenAIBackend, None)`` for the server named by ``feedback.sampler_url`` (``openai``)."""
    if feedback_cfg.sampler == "local":
        return load_optimizer(model_dir, device=device, dtype=dtype)
    if feedback_cfg.sampler == "openai":
        return OpenAIBackend(base_url=feedback_cfg.sampler_url, model=feedback_cfg.sampler_model), None
    raise ValueError(f"feedback.sampler must be local or openai, got {feedback_cfg.sampler!r}")


def generate_heldout(
    model,
    tokenizer,
    records: list[dict],
    out_path: str | os.PathLike,
    method: str,
    max_new_tokens: int,
    batch_size: int = 8,
    instruction: str = "paper",
) -> list[dict]:
    """One greedy prompt per held-out record, appended to ``out_path`` as each batch finishes.

    Records are batched by source (a batch of short ShapesWorld prompts stops early instead of running as
    long as a real query's prompt), then by position; batches are fixed and one is skipped only when all of it
    is done, so a resumed run pads and computes every batch exactly as an uninterrupted one. Returns
    ``{"id", "query", "prompt", "method", "source"}`` rows in the order of ``records``.
    """
    done = {r["id"]: r for r in read_jsonl(out_path)[0]} if Path(out_path).exists() else {}
    ordered = sorted(records, key=lambda r: str(r.get("source")))  # stable: file order within a source
    batches = [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]
    todo = [b for b in batches if any(r["id"] not in done for r in b)]
    for part in track(todo, desc=f"{method} held-out prompts"):
        outs = generate_prompts(
            model,
            tokenizer,
            [r["query"] for r in part],
            n=1,
            temperature=0.0,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            instruction=instruction,
            sources=[r.get("source") for r in part],
        )
        for rec, out in zip(part, outs, strict=True):
            if rec["id"] not in done:
                done[rec["id"]] = {
                    "id": rec["id"],
                    "query": rec["query"],
                    "prompt": out[0],
                    "method": method,
                    "source": rec.get("source"),
                }
                append_jsonl(out_path, done[rec["id"]])
    return [done[r["id"]] for r in records]


def sampler(model, tokenizer, fb, instruction: str, seed: int, batch_size: int, n: int | None = None):
    """``sample(queries, ids, sources) -> k prompts each`` for :func:`vpolib.feedback.sample_prompts`: the optimizer
    sampled with the ``feedback`` section's k (or ``n``), temperature, top-p and length, seeded per batch from
    ``seed``."""

    def sample(
        queries: list[str], ids: list[str], sources: list[str | None] | None = None
    ) -> list[list[str]]:
        return generate_prompts(
            model,
            tokenizer,
            queries,
            n=n or fb.samples_per_query,
            temperature=fb.temperature,
            top_p=fb.top_p,
            max_new_tokens=fb.max_new_tokens,
            batch_size=batch_size,
            instruction=instruction,
            seed=seed,
            sources=sources,
        )

    return sample
