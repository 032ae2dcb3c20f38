"""Teacher prompts, critique and refinement: VPO's principle-based SFT data and text-level pairs.

A teacher writes a first prompt per query; a judge (:mod:`vpolib.judge`) critiques it; prompts the
judge rejects are refined (by an LLM through the reference's refine follow-up, or by rules that
repair what the rule judge found) and judged again. Passing prompts form the SFT set; (refined,
original) pairs form the text-level preference pairs.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from vpolib.backends import GenParams, check_first_batch
from vpolib.compose import compose_prompt
from vpolib.data import interleave
from vpolib.io import append_jsonl, done_keys, read_jsonl
from vpolib.judge import INTRO, Verdict, canonical_word, read_world, required_text, world_gaps
from vpolib.safety_lexicon import harmful_terms
from vpolib.templates import (
    PRINCIPLES,
    REFINE_END,
    REFINE_SCHEMA,
    REFINE_START,
    VERDICT_MARKER,
    critique_messages,
    few_shot_messages,
    optimize_messages,
    refine_json_messages,
    refine_messages,
    response_format,
)

_INTRO_LEAD = re.compile(INTRO.pattern + r"[\s,:]*(?:with|by|on|showing)?[\s,:]*", re.IGNORECASE)


def parse_refined(reply: str | None) -> tuple[str | None, str]:
    """The prompt between the *last* ``[[start]]``/``[[end]]`` pair, or (None, why): like the reference,
    a reply without both markers or with a multi-line result is rejected."""
    if not reply or REFINE_START not in reply or REFINE_END not in reply:
        return None, "no_markers"
    head = reply[: reply.rfind(REFINE_END)]
    if REFINE_START not in head:
        return None, "no_markers"  # [[end]] before any [[start]]
    text = head[head.rfind(REFINE_START) + len(REFINE_START) :].strip()
    if not text:
        return None, "empty"
    if "\n" in text:
        return None, "multiline"
    return text, "ok"


def parse_refined_json(reply: str | None) -> tuple[str | None, str]:
    """Structured mode: ``refined_prompt`` of a ``templates.REFINE_SCHEMA`` reply, or (None, why); same
    rules as :func:`parse_refined` (empty or multi-line results are rejected)."""
    try:
        obj = json.loads(reply[reply.index("{") : reply.rindex("}") + 1]) if reply else None
    except ValueError:
        return None, "not_json"
    text = obj.get("refined_prompt") if isinstance(obj, dict) else None
    if not isinstance(text, str):
        return None, "not_json"
    text = text.strip()
    if not text:
        return None, "empty"
    return (None, "multiline") if "\n" in text else (text, "ok")


REFINER_FIX = (
    "The refiner model does not follow the refine format ({what}). Use a stronger model, structured "
    "output (`--set judge.structured=true`: the server constrains the reply to a JSON schema; vLLM and the "
    "llama.cpp server do), or the offline refiner (`--set refine.refiner=rule`)."
)
TEACHER_FIX = (
    "The teacher model returned no usable prompt. Use a stronger model (`refine.teacher_backend`) or drop "
    'the LLM teacher (`refine.teachers` without "llm").'
)


def critique_reply(verdict: Verdict) -> str:
    """A judge reply in the critique's format, for verdicts that came without one (the rule judge)."""
    if verdict.raw:
        return verdict.raw
    found = "; ".join(verdict.reasons) or "no problem found"
    evidence = ", ".join(f"{k}={v}" for k, v in verdict.details.items())
    return (
        f"Step-by-step verification: {found} (evidence: {evidence})\n"
        f"{VERDICT_MARKER}: {'Yes' if verdict.passed else 'No'}"
    )


class LLMRefiner:
    """The reference's refine follow-up (after the critique conversation) through any backend.

    ``structured``: ask for JSON (``templates.REFINE_SCHEMA``, enforced by the server through
    ``response_format``). ``check_first``: if most of the first that many replies failed or did not
    parse, :func:`~vpolib.backends.check_first_batch` stops the run with a clear message (0: no check).
    """

    def __init__(
        self, backend, params: GenParams | None = None, structured: bool = False, check_first: int = 8
    ):
        self.backend, self.name = backend, f"llm:{backend.name}" + (":structured" if structured else "")
        self.structured, self.check_first, self.checked = structured, check_first, check_first <= 0
        params = params or GenParams(temperature=0.0, top_p=1.0, n=1, max_new_tokens=512)
        fmt = response_format("refine", REFINE_SCHEMA) if structured else None
        self.params = dataclasses.replace(params, response_format=fmt)

    def refine(self, items: list[dict], verdicts: list[Verdict]) -> list[tuple[str | None, str]]:
        if self.checked or not items:
            return self._refine(items, verdicts)
        k = self.check_first
        head, replies = self._refine(items[:k], verdicts[:k], keep_replies=True)
        what = (
            "a JSON object with refined_prompt"
            if self.structured
            else f"one line between {REFINE_START} and {REFINE_END}"
        )
        check_first_batch(
            f"LLM refiner {self.backend.name}",
            replies,
            [r[1] == "ok" for r in head],
            REFINER_FIX.format(what=what),
            getattr(self.backend, "errors", None),
        )
        self.checked = True
        return head + self._refine(items[k:], verdicts[k:])

    def _refine(self, items, verdicts, keep_replies=False):
        build = refine_json_messages if self.structured else refine_messages
        parse = parse_refined_json if self.structured else parse_refined
        convs = [
            build(
                v.details.get("critique") or critique_messages(it["query"], it["prompt"] or ""),
                critique_reply(v),
            )
            for it, v in zip(items, verdicts, strict=True)
        ]
        replies = [t[0] if t else None for t in self.backend.generate(convs, self.params)] if convs else []
        out = [parse(r) if r is not None else (None, "failed") for r in replies]
        return (out, replies) if keep_replies else out


def _drop(text: str, phrase: str, article: bool = False) -> str:
    """Remove a phrase (and, for noun phrases such as '-neg' items, its article: "the lack of detail")."""
    lead = r"(?:(?:the|a|an)\s+)?" if article else ""
    return re.sub(rf"\b{lead}{re.escape(phrase)}\b", "", text, flags=re.IGNORECASE)


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    text = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", text)
    text = re.sub(r"\b(with|and|of|a|an|the)([,.])", r"\2", text)  # a dropped phrase leaves no dangling word
    text = re.sub(r"^[\s,;:.]+", "", text).strip()
    return text[:1].upper() + text[1:]


def _missing_spans(content: str, missing: set[str]) -> list[str]:
    """The query's missing words as one phrase in the query's own words: the stretch of the query from its first
    to its last missing word, typos dropped."""
    words = re.findall(r"[A-Za-z0-9']+", content)
    hits = [i for i, w in enumerate(words) if w.lower() in missing]
    if not hits:
        return []
    kept = [canonical_word(w.lower(), world=False) for w in words[hits[0] : hits[-1] + 1]]
    phrase = " ".join(w for w in kept if w)
    return [phrase] if phrase else []


def restate(objects: list[dict], background: str | None = None, clause: bool = False) -> str:
    """ShapesWorld objects in the world's caption words ("a large red square moves from the left to the right";
    with ``clause``, "... square that moves ..."), joined, with the background if one is asked for."""
    from vpolib.shapesworld.world import CAPTION_MOTION

    that = "that " if clause else ""
    parts = [
        "a "
        + " ".join(v for v in (o["size"], o["colour"], o["shape"] or "shape") if v)
        + (f" {that}{CAPTION_MOTION[o['motion']]}" if o["motion"] else "")
        for o in objects
    ]
    return " and ".join(parts) + (f" on a {background} background" if background else "")


def weave(text: str, phrases: list[str]) -> str:
    """Add ``phrases`` to the prompt's first sentence as a clause ("..., with a red square."), in its style."""
    if not phrases:
        return text
    clause = "with " + " and ".join(phrases)
    m = re.search(r"[.!?](\s|$)", text)
    if not m:
        return f"{text.rstrip(' ,;')}, {clause}."
    return f"{text[: m.start()].rstrip(' ,;')}, {clause}{text[m.start() :]}"


class RuleRefiner:
    """Repairs what :class:`~vpolib.judge.RuleJudge` found, as a careful editor would: missing query content is
    woven into the prompt (canonical words, typos dropped), harmful wording and ``-neg`` items are removed, an
    introductory phrase is cut. On ShapesWorld, an object the prompt leaves out is woven in in the world's words,
    and a prompt that contradicts the query (another direction, colour, size or background) is rewritten in
    them. No raw query is glued on and no generic filler added; a prompt it cannot repair fails the re-judge."""

    name = "rule"

    def __init__(self, max_words: int = 250):
        self.max_words = max_words

    def refine(self, items: list[dict], verdicts: list[Verdict]) -> list[tuple[str | None, str]]:
        return [self._one(it, v) for it, v in zip(items, verdicts, strict=True)]

    def _one(self, item: dict, verdict: Verdict) -> tuple[str | None, str]:
        text = _tidy(
            _INTRO_LEAD.sub("", " ".join((item["prompt"] or "").split()))
        )  # one paragraph, direct start
        banned = [t.split(":", 1)[1] for t in harmful_terms(text) + list(item.get("harmful_terms") or [])]
        for phrase in banned:
            text = _drop(text, phrase)
        for phrase in verdict.details.get("neg_present", []):
            text = _drop(text, phrase, article=True)
        content = required_text(item)
        for phrase in banned:
            content = _drop(content, phrase)
        world = item.get("source") == "shapes"
        missing = set(verdict.details.get("missing", []))  # a low similarity alone names nothing to add
        text = _tidy(text)
        if world and (missing or not text):
            _, absent, contradicted = world_gaps(content, text)
            if contradicted or not text:  # a wrong direction or colour is rewritten, not added beside
                body = restate(*read_world(content))
                text = f"{body}." if body else text
            else:
                text = weave(text, [restate(absent, clause=True)])
        elif missing:
            phrases = _missing_spans(content, missing)
            text = weave(text, phrases) if text else " and ".join(phrases)
        elif not text:  # nothing left of the prompt: start from the query's own words
            text = " ".join(_missing_spans(content, {w.lower() for w in re.findall(r"[A-Za-z']+", content)}))
        # No generic filler for a short prompt: a prompt this refiner cannot make more useful fails the re-judge.
        words = _tidy(text).split()
        if len(words) > self.max_words:
            text = " ".join(words[: self.max_words]).rsplit(".", 1)[0] + "."
        text = _tidy(text)
        if not text:
            return None, "empty"
        return (text, "ok") if text != (item["prompt"] or "").strip() else (None, "unchanged")


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


def critique_and_refine(
    items: list[dict], judge, refiner, log_path: str | Path, chunk: int = 64, progress: bool = False
) -> list[dict]:
    """Judge every candidate, refine the rejected ones and judge them again; resumable.

    Each finished candidate is appended to ``log_path`` (keyed by its id) with ``status``:
    ``pass`` (teacher prompt accepted), ``refined`` (refinement accepted), ``refine_failed`` or
    ``unparsable`` (judge reply without a clear verdict: skipped, as in the reference).
    """
    from tqdm.auto import tqdm

    done = done_keys(log_path, "id")
    todo = [it for it in items if it["id"] not in done]
    for start in tqdm(range(0, len(todo), chunk), disable=not progress, desc="critique+refine"):
        part = todo[start : start + chunk]
        verdicts = judge.judge(part)
        bad = [i for i, v in enumerate(verdicts) if v.passed is False]
        fixes = refiner.refine([part[i] for i in bad], [verdicts[i] for i in bad]) if bad else []
        fixed = {i: f for i, f in zip(bad, fixes, strict=True)}
        ok = [i for i in bad if fixed[i][0]]
        re_verdicts = dict(
            zip(ok, judge.judge([{**part[i], "prompt": fixed[i][0]} for i in ok]), strict=True)
        )
        for i, (item, v) in enumerate(zip(part, verdicts, strict=True)):
            row = {**item, "verdict": _slim(v)}
            if v.passed is None:
                row["status"] = "unparsable"
            elif v.passed:
                row["status"] = "pass"
            else:
                row.update(refined=fixed[i][0], refine_reason=fixed[i][1])
                rv = re_verdicts.get(i)
                row["refined_verdict"] = _slim(rv) if rv else None
                row["status"] = "refined" if rv and rv.passed else "refine_failed"
            append_jsonl(log_path, row)
    rows, _ = read_jsonl(log_path)
    wanted = {it["id"] for it in items}
    return [r for r in rows if r.get("id") in wanted]


def _slim(v: Verdict) -> dict:
    """A verdict for the log, without the (long) critique conversation."""
    d = v.to_dict()
    d["details"] = {k: x for k, x in d["details"].items() if k != "critique"}
    return d


def build_outputs(rows: list[dict], instruction: str = "paper") -> tuple[list[dict], list[dict]]:
    """(SFT examples, text pairs) from critique logs: one of each per query, in log order (as the reference
    dedupes by query). Refined prompts are chosen over the rejected originals."""
    sft, pairs, seen_sft, seen_pair = [], [], set(), set()
    for r in rows:
        if r["status"] not in ("pass", "refined"):
            continue
        prompt = r["prompt"] if r["status"] == "pass" else r["refined"]
        user = optimize_messages(r["query"], instruction, r.get("source"))
        if r["query"] not in seen_sft:
            seen_sft.add(r["query"])
            sft.append(
                {
                    "id": r["query_id"],
                    "query": r["query"],
                    "source": r.get("source"),
                    "prompt": prompt,
                    "origin": "teacher" if r["status"] == "pass" else "refined",
                    "messages": user + [{"role": "assistant", "content": prompt}],
                }
            )
        if r["status"] == "refined" and r["query"] not in seen_pair:
            seen_pair.add(r["query"])
            pairs.append(
                {
                    "id": r["id"],
                    "query": r["query"],
                    "prompt": user,
                    "chosen": [{"role": "assistant", "content": r["refined"]}],
                    "rejected": [{"role": "assistant", "content": r["prompt"]}],
                    "source": "text",
                }
            )
    return sft, pairs


def require_sft(sft: list[dict], summary: dict) -> None:
    """Stop with the reason when no candidate reached the SFT set, instead of writing an empty sft.jsonl."""
    if sft:
        return
    top = ", ".join(f"{k} ({v})" for k, v in list(summary.get("reasons", {}).items())[:4]) or "none"
    raise RuntimeError(
        f"02_refine: no SFT example. {summary['n_candidates']} candidates: {summary['n_pass']} passed the judge, "
        f"{summary['n_refined']} passed after refinement, {summary['n_refine_failed']} failed refinement, "
        f"{summary['n_unparsable']} verdicts unparsable. Top reasons: {top}. With an LLM judge try "
        "`--set judge.structured=true` or a stronger model; with none, check the teachers (`refine.teachers`)."
    )


def summarize(rows: list[dict]) -> dict:
    """Counts by status, first-pass rate overall and per principle, and the reasons histogram."""
    from collections import Counter

    n = len(rows)
    status = Counter(r["status"] for r in rows)
    judged = [r for r in rows if r["status"] != "unparsable"]
    out = {
        "n_candidates": n,
        **{f"n_{k}": status.get(k, 0) for k in ("pass", "refined", "refine_failed", "unparsable")},
        "first_pass_rate": round(status.get("pass", 0) / len(judged), 4) if judged else None,
        "refine_success_rate": round(
            status.get("refined", 0) / max(1, status.get("refined", 0) + status.get("refine_failed", 0)), 4
        ),
    }
    for p in PRINCIPLES:
        known = [
            r["verdict"]["principles"].get(p) for r in judged if r["verdict"]["principles"].get(p) is not None
        ]
        out[f"pass_rate_{p}"] = round(sum(known) / len(known), 4) if known else None
    out["reasons"] = dict(Counter(x for r in rows for x in r["verdict"]["reasons"]).most_common())
    return out


def failure_examples(rows: list[dict], per_reason: int = 1) -> list[dict]:
    """For each failure reason, the first candidates with it: query, original prompt, refinement, outcome."""
    seen: dict[str, int] = {}
    out = []
    for r in rows:
        for reason in r["verdict"]["reasons"]:
            if seen.get(reason, 0) < per_reason:
                seen[reason] = seen.get(reason, 0) + 1
                out.append(
                    {
                        "reason": reason,
                        "query": r["query"],
                        "before": r["prompt"],
                        "after": r.get("refined"),
                        "status": r["status"],
                    }
                )
    return out


def real_queries(pool: list[dict], n: int | None, harmful_share: float = 0.0) -> list[dict]:
    """The real queries the compose and LLM teachers write for: ``n`` of the pool (all: None), at least
    ``harmful_share`` of them harmful-flagged where the pool has that many, spread evenly through the list. In
    the pool's order harmful ones are ~2%: too few examples of dropping harmful wording for the optimizer."""
    real = [r for r in pool if r.get("source") != "shapes"]
    n = len(real) if n is None else min(n, len(real))
    harmful = [r for r in real if "harmful" in (r.get("flags") or [])][: round(n * harmful_share)]
    taken = {id(r) for r in harmful}
    others = [r for r in real if id(r) not in taken][: n - len(harmful)]
    return interleave(others, harmful)


def teacher_candidates(cfg, pool: list[dict], vbench: list[dict], cache_dir: Path) -> tuple[list[dict], dict]:
    """Every teacher's first prompts for the SFT pool: VBench's shipped expansions, the ShapesWorld teacher, the
    world's captions, the templated teacher on ``refine.n_queries`` real queries (:func:`real_queries`, :mod:`vpolib.compose`),
    and an LLM prompted few-shot on the same queries (its replies cached in ``cache_dir/teacher.jsonl``, so a killed
    run resumes). Returns ``(candidates, teacher stats)``."""
    from vpolib.backends import CachedBackend, make_backend

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


def build_refiner(cfg, cache_dir: Path):
    """The refiner ``refine.refiner`` names: rules that repair what the rule judge found, or the reference's refine
    follow-up through the judge's LLM (replies cached in ``cache_dir/refiner.jsonl``)."""
    if cfg.refine.refiner == "rule":
        return RuleRefiner(cfg.judge.max_words)
    from vpolib.backends import CachedBackend, make_backend

    jcfg = cfg.judge
    backend = make_backend(jcfg.backend, jcfg.batch_size, jcfg.concurrency)
    return LLMRefiner(
        CachedBackend(backend, Path(cache_dir) / "refiner.jsonl"),
        structured=jcfg.structured,
        check_first=jcfg.check_first,
    )


def first_pass_frame(rows: list[dict]):
    """One row per logged candidate: its teacher kind (``llm0`` -> ``llm``), status, and each principle's first
    verdict (True / False / None)."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "teacher": r["teacher"].rstrip("0123456789"),
                "status": r["status"],
                **{p: r["verdict"]["principles"].get(p) for p in PRINCIPLES},
            }
            for r in rows
        ]
    )


def plot_reasons(reasons: dict[str, int], path: str | Path):
    """Why first prompts were rejected: one bar per reason (``summarize(...)["reasons"]``); saved and returned."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    frame = pd.Series(reasons, dtype=int).rename_axis("reason").reset_index(name="count")
    fig, ax = plt.subplots(figsize=(7, 0.4 * max(3, len(frame)) + 1))
    if len(frame):
        sns.barplot(data=frame, y="reason", x="count", hue="reason", legend=False, ax=ax)
    ax.set_title("Why first prompts were rejected")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


def teacher_modes(rows: list[dict]):
    """The ShapesWorld teacher's failure modes: per mode (``none`` for a faithful prompt), how many of its prompts
    have it, how often the judge passed them, and its rate (prompts with it / the teacher's prompts)."""
    import pandas as pd

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


def report_markdown(title: str, judge: str, refiner: str, summary: dict, rows: list[dict]) -> str:
    """``report.md``: the summary counts, the reasons histogram, and one before/after example per reason."""
    lines = [f"# {title}", "", f"judge: {judge}; refiner: {refiner}", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary.items() if k != "reasons"]
    lines += ["", "## Reasons", "", "| reason | count |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary["reasons"].items()]
    lines += ["", "## Before / after", ""]
    lines += [
        f"- **{e['reason']}** ({e['status']}): `{e['query']}`\n  - before: {e['before']}\n  - after: {e['after']}"
        for e in failure_examples(rows)
    ]
    return "\n".join(lines) + "\n"
