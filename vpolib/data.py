"""Stage 01: load the real user queries, clean them, flag them, and split them deterministically."""

from __future__ import annotations

import hashlib
import html
import json
import re
import unicodedata
from collections import Counter
from pathlib import Path

from vpolib.safety_lexicon import harmful_terms
from vpolib.tags import parse_tags
from vpolib.words import FUNCTION_WORDS

# Function words of the languages most often seen in the VPO queries, besides English's (FUNCTION_WORDS).
_OTHER = set(
    "el la los las un una y de del en con por que es le les des et du est une der die das "
    "und ein eine mit ist nicht il di che per um uma com não para yang dan di ini itu".split()
)


def load_query_list(path: str | Path, source: str) -> tuple[list[dict], list[dict]]:
    """Read a JSON list of strings (or JSONL of strings) -> (records, malformed).

    Malformed entries (non-strings, broken JSON lines) are returned, never raised.
    """
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    bad: list[dict] = []
    try:
        items = json.loads(text)
        if not isinstance(items, list):
            raise ValueError(f"{path}: expected a JSON list, got {type(items).__name__}")
        entries = list(enumerate(items))
    except json.JSONDecodeError:
        entries = []  # fall back to one JSON value per line
        for n, line in enumerate(text.splitlines()):
            if not line.strip():
                continue
            try:
                entries.append((n, json.loads(line)))
            except json.JSONDecodeError as err:
                bad.append(
                    {"source": source, "index": n, "reason": f"invalid JSON: {err.msg}", "raw": line[:200]}
                )
    records = []
    for i, item in entries:
        if not isinstance(item, str):
            bad.append(
                {
                    "source": source,
                    "index": i,
                    "reason": f"not a string: {type(item).__name__}",
                    "raw": repr(item)[:200],
                }
            )
            continue
        records.append({"id": f"{source}-{i:05d}", "source": source, "index": i, "raw": item})
    return records, bad


def clean_text(text: str) -> str:
    """Unescape HTML entities (also double-escaped ones), normalise unicode and whitespace."""
    for _ in range(2):  # '&amp;quot;' -> '&quot;' -> '"'
        text = html.unescape(text)
    text = unicodedata.normalize("NFC", text)
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text)
    return re.sub(r"\s+", " ", text).strip()


def is_probably_english(text: str) -> bool:
    """A transparent heuristic: mostly Latin letters, and not more foreign than English function words."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return True
    if sum(c.isascii() or unicodedata.name(c, "").startswith("LATIN") for c in letters) / len(letters) < 0.8:
        return False
    words = re.findall(r"[a-zà-ÿ]+", text.lower())
    en = sum(w in FUNCTION_WORDS for w in words)
    other = sum(w in _OTHER and w not in FUNCTION_WORDS for w in words)
    return not (len(words) >= 4 and other >= 2 and other > en)


def is_harmful(record: dict) -> bool:
    """Whether :func:`annotate` flagged the query harmful (its wording holds a harmful term)."""
    return "harmful" in (record.get("flags") or [])


def annotate(record: dict, max_chars: int) -> dict:
    """Add ``query`` (cleaned, tags kept), ``content``, ``tags``, ``flags``, ``harmful_terms``."""
    query = clean_text(record["raw"])
    parsed = parse_tags(query)
    terms = harmful_terms(parsed.content)
    flags = []
    if terms:
        flags.append("harmful")
    if not is_probably_english(parsed.content):
        flags.append("non_english")
    if len(query) > max_chars:
        flags.append("too_long")
    if parsed.tags:
        flags.append("has_tags")
    if parsed.warnings:
        flags.append("tag_warning")
    return {
        **record,
        "query": query,
        "content": parsed.content,
        "tags": parsed.tag_dicts(),
        "tag_warnings": parsed.warnings,
        "flags": flags,
        "harmful_terms": terms,
    }


def filter_queries(records: list[dict], min_chars: int, drop_non_english: bool, drop_too_long: bool):
    """Apply the filters in order -> (kept, dropped, steps); each step reports how many it removed."""
    steps, dropped = [], []

    def step(name: str, keep):
        nonlocal records
        kept = []
        for r in records:
            if keep(r):  # called once per record: some checks remember what they saw
                kept.append(r)
            else:
                dropped.append({**r, "dropped_by": name})
        steps.append({"step": name, "removed": len(records) - len(kept), "remaining": len(kept)})
        records = kept

    steps.append({"step": "read", "removed": 0, "remaining": len(records)})
    step("empty", lambda r: bool(r["query"]))
    step("no_content (tags only or too short)", lambda r: len(r["content"]) >= min_chars)
    seen: set[str] = set()

    def first_time(r):
        key = re.sub(r"\W+", " ", r["query"].casefold()).strip()
        if key in seen:
            return False
        seen.add(key)
        return True

    step("duplicate", first_time)
    if drop_non_english:
        step("non_english", lambda r: "non_english" not in r["flags"])
    if drop_too_long:
        step("too_long", lambda r: "too_long" not in r["flags"])
    return records, dropped, steps


def stable_order(records: list[dict], seed: int, key: str = "query") -> list[dict]:
    """Order by a seeded hash of each record's text: deterministic, and independent of input order."""
    return sorted(records, key=lambda r: hashlib.sha256(f"{seed}:{r[key]}".encode()).hexdigest())


def interleave(major: list, minor: list) -> list:
    """``minor`` spread evenly through ``major`` (every prefix holds its share of each)."""
    n = len(major) + len(minor)
    slots = {round(i * n / len(minor)) for i in range(len(minor))} if minor else set()
    it_major, it_minor = iter(major), iter(minor)
    return [next(it_minor) if i in slots else next(it_major) for i in range(n)]


def split_pools(
    records: list[dict], seed: int, heldout_size: int, heldout_from: str, heldout_harmful: int = 0
) -> dict[str, list[dict]]:
    """SFT pool, DPO pool, and a held-out set carved from ``heldout_from`` (never trained on).

    ``heldout_harmful`` of the held-out queries are harmful-flagged ones, spread evenly through the file, so
    that any prefix of it (the first 100 evaluated, say) holds its share of harmful queries.
    """
    by_source = {
        "sft": [r for r in records if r["source"] == "sft"],
        "dpo": [r for r in records if r["source"] == "dpo"],
    }
    if heldout_from not in by_source:
        raise ValueError(f"heldout_from must be 'sft' or 'dpo', got {heldout_from!r}")
    ordered = stable_order(by_source[heldout_from], seed)
    if heldout_size > len(ordered) // 2:
        raise ValueError(
            f"heldout_size {heldout_size} is more than half the {heldout_from} pool ({len(ordered)})"
        )
    harmful = [r for r in ordered if is_harmful(r)][: min(heldout_harmful, heldout_size)]
    others = [r for r in ordered if not is_harmful(r)][: heldout_size - len(harmful)]
    heldout = interleave(others, harmful) if heldout_harmful else ordered[:heldout_size]
    heldout_ids = {r["id"] for r in heldout}
    return {
        "sft_pool": by_source["sft"]
        if heldout_from != "sft"
        else [r for r in by_source["sft"] if r["id"] not in heldout_ids],
        "dpo_pool": by_source["dpo"]
        if heldout_from != "dpo"
        else [r for r in by_source["dpo"] if r["id"] not in heldout_ids],
        "heldout": heldout,
    }


def tag_counts(records: list[dict]) -> Counter:
    """How many queries carry each tag name."""
    # dict.fromkeys, not a set: the counter's order (metrics.json's "tags") must not vary with PYTHONHASHSEED
    return Counter(name for r in records for name in dict.fromkeys(t["name"] for t in r["tags"]))


def shapes_splits(n_sft: int, n_dpo: int, n_heldout: int, seed: int, max_chars: int) -> dict[str, list[dict]]:
    """ShapesWorld user queries (with their scene and caption) for each split, annotated like real ones."""
    if n_sft + n_dpo + n_heldout == 0:  # e.g. the full profile, whose video model is a real one
        return {"sft_pool": [], "dpo_pool": [], "heldout": []}
    # here, not at the top: vpolib.shapesworld's package loads torch and the video pipeline; stage 01's real-query
    # splits need neither
    from vpolib.shapesworld import make_queries

    out = _shapes_rows(make_queries(n_sft + n_dpo + n_heldout, seed), max_chars)
    # held-out first, then DPO, then SFT: growing a training split never moves the evaluation queries
    heldout, dpo = out[:n_heldout], out[n_heldout : n_heldout + n_dpo]
    return {"sft_pool": out[n_heldout + n_dpo :], "dpo_pool": dpo, "heldout": heldout}


def shapes_beyond(n_splits: int, n: int, seed: int, max_chars: int) -> list[dict]:
    """``n`` ShapesWorld queries that no split holds: the world's stream after the ``n_splits`` queries that
    :func:`shapes_splits` shares out (``data.shapes_sft + shapes_dpo + shapes_heldout``), annotated alike. For
    dev studies that grow the DPO set without touching the dev or held-out queries."""
    from vpolib.shapesworld import make_queries  # as in shapes_splits

    return _shapes_rows(make_queries(n_splits + n, seed)[n_splits:], max_chars)


def _shapes_rows(items: list[dict], max_chars: int) -> list[dict]:
    """World queries -> split rows (:data:`SPLIT_FIELDS`), annotated like real ones."""
    return [
        {
            **annotate({"id": q["id"], "source": "shapes", "raw": q["query"]}, max_chars),
            "scene": q["scene"],
            "caption": q["caption"],
        }
        for q in items
    ]


SPLIT_FIELDS = ("id", "source", "query", "content", "tags", "flags", "harmful_terms", "scene", "caption")


def split_files(splits: dict[str, list[dict]], shapes: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The rows of each split file: its real queries then its ShapesWorld ones, with the fields later stages
    read (:data:`SPLIT_FIELDS`)."""
    return {
        name: [{k: r[k] for k in SPLIT_FIELDS if k in r} for r in splits[name] + shapes[name]]
        for name in splits
    }


def split_sizes(splits: dict[str, list[dict]], shapes: dict[str, list[dict]], vbench: list[dict]) -> dict:
    """``{split: {"real": n, "shapes": n}}`` for every split file, VBench pairs included."""
    sizes = {name: {"real": len(splits[name]), "shapes": len(shapes[name])} for name in splits}
    return {**sizes, "vbench_pairs": {"real": len(vbench), "shapes": 0}}


def rejected_rows(malformed: list[dict], dropped: list[dict]) -> list[dict]:
    """What ``rejected.jsonl`` lists: malformed records as read, and dropped queries with the step that dropped them."""
    return malformed + [{k: r[k] for k in ("id", "source", "raw", "dropped_by")} for r in dropped]


def tag_rows(records: list[dict]) -> list[dict]:
    """One row per tag occurrence: ``{"tag": "-neg", "kind": "content"}``."""
    return [{"tag": f"-{t['name']}", "kind": t["kind"]} for r in records for t in r["tags"]]


def word_counts(kept: list[dict], vbench: list[dict]) -> list[dict]:
    """Words per text, ``{"text", "words"}``: user queries (their content, tags removed), VBench short prompts and
    their GPT-4o and Wan2.1 expansions."""
    return (
        [{"text": f"user queries ({r['source']})", "words": len(r["content"].split())} for r in kept]
        + [{"text": "VBench short prompts", "words": len(r["query"].split())} for r in vbench]
        + [{"text": "GPT-4o expansions", "words": len(r["gpt4o"].split())} for r in vbench if r["gpt4o"]]
        + [{"text": "Wan2.1 expansions", "words": len(r["wan"].split())} for r in vbench if r["wan"]]
    )


def plot_filter_steps(steps: list[dict], path: str | Path):
    """Queries remaining after each filter step, as bars; saved to ``path`` and returned."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(7, 2.8))
    sns.barplot(data=pd.DataFrame(steps), y="step", x="remaining", ax=ax, color="tab:blue")
    ax.set(title="Queries remaining after each filter step", xlabel="queries", ylabel="")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


def plot_tags(rows: list[dict], path: str | Path):
    """Tag frequency by kind (log scale) from :func:`tag_rows` (at least one); saved to ``path`` and returned."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    frame = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(7, 4))
    order = frame["tag"].value_counts().index
    sns.countplot(data=frame, y="tag", hue="kind", order=order, dodge=False, ax=ax)
    ax.set(title="Tag frequency", xlabel="occurrences (log scale)", xscale="log")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


def plot_lengths(rows: list[dict], path: str | Path):
    """Words per prompt for each kind of text (:func:`word_counts`), as box plots; saved and returned."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(8, 3.2))
    sns.boxplot(data=pd.DataFrame(rows), x="words", y="text", showfliers=False, ax=ax)
    ax.set(title="Words per prompt", ylabel="")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig
