"""Critique and refinement: VPO's principle-based SFT data and text-level pairs.

A teacher (:mod:`vpolib.teachers`) writes a first prompt per query; a judge (:mod:`vpolib.judge`) critiques it;
prompts the judge rejects are refined (by an LLM through the reference's refine follow-up, or by rules that
repair what the rule judge found) and judged again. Passing prompts form the SFT set; (refined, original) pairs
form the text-level preference pairs.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from vpolib.backends import CachedBackend, GenParams, check_first_batch, make_backend
from vpolib.io import append_jsonl, done_keys, read_jsonl
from vpolib.judge import INTRO, Verdict, required_text
from vpolib.safety_lexicon import harmful_terms
from vpolib.templates import (
    PRINCIPLES,
    REFINE_END,
    REFINE_SCHEMA,
    REFINE_START,
    VERDICT_MARKER,
    critique_messages,
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
    # vpolib.shapesworld's __init__ loads torch and diffusers (~10 s): imported on first use, as the judge does
    from vpolib.shapesworld.vocabulary import canonical_word

    words = re.findall(r"[A-Za-z0-9']+", content)
    hits = [i for i, w in enumerate(words) if w.lower() in missing]
    if not hits:
        return []
    kept = [canonical_word(w.lower(), world=False) for w in words[hits[0] : hits[-1] + 1]]
    phrase = " ".join(w for w in kept if w)
    return [phrase] if phrase else []


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
        # vpolib.shapesworld's __init__ loads torch and diffusers (~10 s): imported on first use, as the judge does
        from vpolib.shapesworld.vocabulary import read_world, restate, world_gaps

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


def build_refiner(cfg, cache_dir: Path):
    """The refiner ``refine.refiner`` names: rules that repair what the rule judge found, or the reference's refine
    follow-up through the judge's LLM (replies cached in ``cache_dir/refiner.jsonl``)."""
    if cfg.refine.refiner == "rule":
        return RuleRefiner(cfg.judge.max_words)
    jcfg = cfg.judge
    backend = make_backend(jcfg.backend, jcfg.batch_size, jcfg.concurrency)
    return LLMRefiner(
        CachedBackend(backend, Path(cache_dir) / "refiner.jsonl"),
        structured=jcfg.structured,
        check_first=jcfg.check_first,
    )


def critique_and_refine(
    items: list[dict], judge, refiner, log_path: str | Path, chunk: int = 64, progress: bool = False
) -> list[dict]:
    """Judge every candidate, refine the rejected ones and judge them again; resumable.

    Each finished candidate is appended to ``log_path`` (keyed by its id) with ``status``:
    ``pass`` (teacher prompt accepted), ``refined`` (refinement accepted), ``refine_failed`` or
    ``unparsable`` (judge reply without a clear verdict: skipped, as in the reference).
    """
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


def critique_summary(rows: list[dict]) -> dict:
    """The critique log in numbers (stage 02's metrics): counts by status, first-pass rate overall and per
    principle, refinement success rate, and the reasons histogram."""
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
