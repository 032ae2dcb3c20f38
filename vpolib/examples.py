"""Training examples from the stages' records: SFT rows, preference pairs, the held-out sample, the eval split.

Rows are TRL's conversational formats: ``{"prompt", "completion"}`` for SFT, ``{"prompt", "chosen",
"rejected"}`` for DPO (each a list of chat turns).
"""

from __future__ import annotations

import random
from itertools import zip_longest
from pathlib import Path

from vpolib.io import read_jsonl

SFT_COLUMNS = ("prompt", "completion")  # what the SFT trainer reads of a row (``query``, ``source``: display)
PAIR_COLUMNS = ("prompt", "chosen", "rejected")
RL_COLUMNS = ("prompt", "query", "id")  # GRPO: the user turn to sample from, and what the reward reads
# dpo.pairs / dpo.ablations -> which pair sources a DPO model trains on (the paper's ablation rows).
PAIR_SETS = {"both": {"text", "video"}, "text": {"text"}, "video": {"video"}, "paper": {"text", "video"}}
# ... and the file of stage 04 each reads: an ablation trains on ALL pairs of its kind (one per query per track),
# not on what a merge left of them; "paper" is the reference's recipe built from the same samples (vpo-paper).
PAIR_FILES = {
    "both": "pairs.jsonl",
    "text": "text_pairs.jsonl",
    "video": "video_pairs.jsonl",
    "paper": "paper_pairs.jsonl",
}


def _is_chat(messages) -> bool:
    """A non-empty list of ``{"role": str, "content": non-blank str}`` turns."""
    return (
        isinstance(messages, list)
        and bool(messages)
        and all(
            isinstance(m, dict)
            and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str)
            and m["content"].strip()
            for m in messages
        )
    )


def sft_examples(records: list[dict]) -> tuple[list[dict], int]:
    """SFT records -> TRL conversational ``{"prompt", "completion", "query", "source"}`` rows; returns
    ``(rows, skipped)``.

    Prompt/completion (rather than one ``messages`` list) lets TRL mask the prompt for any chat
    template, including ones without ``{% generation %}`` markers (Llama-3's). Records that are not
    a chat ending in an assistant turn are skipped.
    """
    rows, skipped = [], 0
    for rec in records:
        msgs = rec.get("messages")
        if not _is_chat(msgs) or len(msgs) < 2 or msgs[-1]["role"] != "assistant":
            skipped += 1
            continue
        rows.append(
            {
                "prompt": msgs[:-1],
                "completion": msgs[-1:],
                "query": rec.get("query", ""),
                "source": rec.get("source"),
            }
        )
    return rows, skipped


def pair_examples(records: list[dict], sources: set[str] | None = None) -> tuple[list[dict], int]:
    """Preference pairs -> ``{"prompt", "chosen", "rejected"}`` rows, keeping only ``sources`` if given.

    Returns ``(rows, skipped)``: pairs with a malformed or empty side, or identical sides, are skipped.
    """
    rows, skipped = [], 0
    for rec in records:
        if sources is not None and rec.get("source") not in sources:
            continue
        if not all(_is_chat(rec.get(k)) for k in PAIR_COLUMNS) or rec["chosen"] == rec["rejected"]:
            skipped += 1
            continue
        rows.append({k: rec[k] for k in PAIR_COLUMNS})
    return rows, skipped


def heldout_sample(records: list[dict], n: int | None) -> list[dict]:
    """Up to ``n`` held-out records, taking sources in turn (real and ShapesWorld queries both appear).

    Deterministic (file order within each source), so notebooks 03 and 05 prompt the same queries.
    """
    by_source: dict[str, list[dict]] = {}
    for rec in records:
        if str(rec.get("query") or "").strip():
            by_source.setdefault(rec.get("source", ""), []).append(rec)
    queues = [by_source[s] for s in sorted(by_source)]
    out = [rec for group in zip_longest(*queues) for rec in group if rec is not None]
    return out if n is None else out[:n]


def split(rows: list, eval_fraction: float, seed: int) -> tuple[list, list]:
    """Shuffle deterministically and hold out ``eval_fraction`` (at least one row when possible)."""
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    n_eval = min(max(1, round(len(rows) * eval_fraction)), len(rows) - 1) if eval_fraction > 0 else 0
    return rows[n_eval:], rows[:n_eval]


def capped_split(
    rows: list, eval_fraction: float, seed: int, max_train: int | None = None, max_eval: int | None = None
) -> tuple[list, list]:
    """:func:`split`, then at most ``max_train`` training and ``max_eval`` eval rows (None: all)."""
    train, evaluation = split(rows, eval_fraction, seed)
    return train[:max_train], evaluation[:max_eval]


def require_examples(train: list, source: str) -> None:
    """Stop with what was read when no training example is left (``source`` names the file and its counts)."""
    if not train:
        raise ValueError(f"no usable training examples in {source}")


def dpo_variants(dpo_cfg) -> list[str]:
    """The DPO models to train: ``dpo.pairs`` (the VPO model) first, then the ablations; unknown pair sets stop
    here."""
    variants = [dpo_cfg.pairs] + [a for a in dpo_cfg.ablations if a != dpo_cfg.pairs]
    unknown = [v for v in variants if v not in PAIR_SETS]
    if unknown:
        raise ValueError(
            f"dpo.pairs / dpo.ablations: unknown pair set(s) {unknown}; choose from {sorted(PAIR_SETS)}"
        )
    return variants


def variant_files(name: str, main: str) -> tuple[str, str]:
    """Where a DPO variant is saved in the stage folder: ``(model dir, held-out prompts file)``; the main one
    (``dpo.pairs``) as ``model`` and ``heldout_prompts.jsonl``, an ablation with its pair set as a suffix."""
    if name == main:
        return "model", "heldout_prompts.jsonl"
    return f"model_{name}", f"heldout_prompts_{name}.jsonl"


def round_dirs(rounds: int) -> list[str]:
    """The VPO model's folder in stage 05 after each preference round: ``model_r1``, ``model_r2``, ... and the
    last round's ``model`` (where notebook 06 and ``optimize`` look)."""
    return [f"model_r{r}" for r in range(1, rounds)] + ["model"]


def unsafe_rejected(record: dict) -> bool:
    """A text pair whose rejected prompt the judge found unsafe (its ``why`` names a ``harmless:`` reason)."""
    return record.get("source") == "text" and "harmless:" in str(record.get("why") or "")


def repeat_unsafe(train: list[dict], records: list[dict], times: int) -> list[dict]:
    """``train`` with each row from an :func:`unsafe_rejected` record in it ``times`` times in all (the copies go
    last; the trainer shuffles). Applied after the split, so no copy reaches the eval pairs."""
    if times <= 1:
        return train
    unsafe = {_pair_key(r) for r in records if unsafe_rejected(r)}
    return train + [r for r in train if _pair_key(r) in unsafe] * (times - 1)


def _pair_key(row: dict) -> str:
    """A pair's prompt and both answers as one hashable string (a record and its training row share it)."""
    return repr([row[k] for k in PAIR_COLUMNS])


def variant_split(pairs_dir: Path, name: str, dpo_cfg, seed: int) -> tuple[list[dict], list[dict], int]:
    """A DPO variant's ``(train, eval, skipped)`` pairs: the file for its pair set (:data:`PAIR_FILES`) in
    ``pairs_dir`` (04's folder, or a later round's; no file: no pairs), its sources only (:data:`PAIR_SETS`),
    split and capped by the ``dpo`` section, the pairs that fix an unsafe prompt repeated
    ``dpo.unsafe_repeat`` times (not in ``paper``: the reference's recipe weights every pair once). Notebook 05
    and ``python -m vpolib.train dpo`` both read pairs here."""
    path = Path(pairs_dir) / PAIR_FILES[name]
    records = read_jsonl(path)[0] if path.exists() else []  # no file: stage 04 found no pair of that kind
    rows, skipped = pair_examples(records, PAIR_SETS[name])
    train, evaluation = capped_split(rows, dpo_cfg.eval_fraction, seed, dpo_cfg.max_pairs, dpo_cfg.max_eval)
    times = 1 if name == "paper" else dpo_cfg.unsafe_repeat
    return repeat_unsafe(train, records, times), evaluation, skipped


def no_pairs(name: str, main: str, by_source: dict) -> str:
    """Why a variant without pairs is skipped; the main variant (``main``) cannot be, and stops here."""
    if name == main:
        raise ValueError(f"no usable {name!r} pairs in 04_feedback/pairs.jsonl ({dict(by_source)})")
    return f"no usable pairs from sources {sorted(PAIR_SETS[name])}"
