"""Text feedback: every sampled prompt judged, failures refined and judged again; the paper's text pairs.

The critique log (:func:`judge_samples`) feeds both recipes' text pairs: the paper's (a refinement over the sample it
repaired, :func:`paper_text_pairs`) and the on-policy one's (:func:`vpolib.preference.text_pairs`). Whether a text
repair also helps the video is measured on the paper's pairs (:func:`refined_vs_original`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from vpolib.noise import video_seed
from vpolib.refine import critique_and_refine
from vpolib.teachers import candidate
from vpolib.templates import optimize_messages


def judge_samples(rows: list[dict], records: dict[str, dict], judge, refiner, log_path: Path) -> list[dict]:
    """Every sampled prompt of every query judged, failures refined and judged again (resumable log): the
    critique rows of both recipes' text pairs (ids ``<query id>:sft<k>``)."""
    items = []
    for row in rows:
        rec = records[row["id"]]
        for k, prompt in enumerate(row["prompts"]):
            items.append({**candidate(rec, f"sft{k}", prompt), "id": f"{row['id']}:sft{k}"})
    return critique_and_refine(items, judge, refiner, log_path)


def paper_text_feedback(
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


def refined_vs_original(text_pairs: list[dict], scored: list[dict], backend, seed: int) -> list[dict]:
    """Video reward of each text pair's refined prompt next to its original sample's, same noise, same checklist.

    For the text pairs whose original (rejected) sample was rendered and scored: does the text-level repair also
    help the video? Returns ``{"id", "original", "refined"}`` rewards as fractions of the checklist maximum.
    With ``backend=None`` (the videos came from :func:`vpolib.scoring.run_jobs`) nothing is rendered here: ``[]``.
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
