"""Stage 06 data collection: every method's held-out prompts, judged and (for ShapesWorld) rendered and scored.

Both loops append one JSONL record per (method, query id) (per noise seed too, for videos) as it finishes and
skip finished keys on a rerun, so a killed evaluation resumes. Records have the shapes :mod:`vpolib.analysis`
reads. Sampled decoding (:func:`sampled_videos`) renders prompts sampled from the trained optimizers the same way.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from vpolib import rewriters
from vpolib.analysis import SAMPLE_MARK, is_refusal
from vpolib.backends import CachedBackend, GenParams, make_backend
from vpolib.checkpoints import load_optimizer, optimizer_dir
from vpolib.data import is_harmful
from vpolib.feedback import sample_prompts
from vpolib.generation import sampler
from vpolib.io import append_jsonl, read_json, read_jsonl, write_json
from vpolib.noise import video_seed
from vpolib.progress import track
from vpolib.video import media_path

TEXT_FIELDS = ("query", "content", "tags", "harmful_terms", "source")


def key(method: str, query_id: str) -> str:
    return f"{method}|{query_id}"


def seed_key(method: str, query_id: str, s: int = 0) -> str:
    """The key of a video rendered with eval seed ``s``: seed 0 keeps :func:`key` (files of one-seed runs still
    resume), seed s >= 1 is ``"<key>#<s>"``."""
    return key(method, query_id) + (f"#{s}" if s else "")


def eval_id(query_id: str, s: int = 0) -> str:
    """What eval seed ``s`` of a query is derived from: the query id itself for seed 0 (the one noise of every
    earlier run), ``"<id>#eval<s>"`` for the others."""
    return query_id if s == 0 else f"{query_id}#eval{s}"


def eval_seed(seed: int, query_id: str, s: int = 0) -> int:
    """The noise of eval seed ``s`` of a held-out query, whichever method's prompt renders it (paired): seed 0 is
    ``noise.video_seed(seed, id)``, seed s >= 1 ``noise.video_seed(seed, "<id>#eval<s>")``."""
    return video_seed(seed, eval_id(query_id, s))


def keep(records: list[dict], prompts: dict, seeds: int = 1) -> list[dict]:
    """The records of ``prompts``' (method, query id) pairs only (``{method: ids}``), eval seeds ``0..seeds-1``
    (a resumed file may hold more)."""
    wanted = {seed_key(m, q, s) for m, ids in prompts.items() for q in ids for s in range(seeds)}
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
        "harmful": is_harmful(item),
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
    seeds: int = 1,
    gifs: bool = True,
) -> tuple[list[dict], dict]:
    """Render each method's prompt for each query with ``seeds`` noise seeds and score every video against the
    ORIGINAL query's checklist.

    Seed 0 of a query is ``seed_of(id)``, seed s >= 1 ``seed_of(eval_id(id, s))`` (with ``seed_of =
    noise.video_seed(run seed, .)`` that is :func:`eval_seed`): the same for every method, so each query sees
    the same noises whichever prompt renders it (paired comparison). Records carry their seed index (``"seed"``)
    and key (:func:`seed_key`). Queries are cut into fixed chunks, one render per (method, chunk, seed); a chunk
    is redone whole if any of its videos is missing (same seeds, same videos). With ``gifs`` the seed-0 video
    of each (method, query) is saved as a GIF (``"gif"``; None for the other seeds).
    """
    done = {r["key"] for r in read_jsonl(path)[0]} if path.exists() else set()
    checklists = {q["id"]: backend.checklist(q["query"]) for q in queries}
    chunks = [queries[i : i + batch] for i in range(0, len(queries), batch)]
    jobs = [
        (m, c, s)
        for m in prompts
        for c in chunks
        for s in range(seeds)
        if any(q["id"] in prompts[m] and seed_key(m, q["id"], s) not in done for q in c)
    ]
    counts = {"resumed": len(done), "rendered": 0, "failed": 0}
    for method, chunk, s in track(jobs, desc="rendering", disable=not jobs):
        todo = [q for q in chunk if q["id"] in prompts[method]]
        noises = [seed_of(eval_id(q["id"], s)) for q in todo]
        try:
            videos = backend.render([prompts[method][q["id"]] for q in todo], noises)
        except Exception as err:  # noqa: BLE001 - recorded; the rest of the evaluation goes on
            counts["failed"] += len(todo)
            counts.setdefault("errors", []).append(f"{method}: {type(err).__name__}: {err}"[:300])
            continue
        for q, video, noise in zip(todo, videos, noises, strict=True):  # video: [F, H, W, 3] uint8
            if seed_key(method, q["id"], s) in done:
                continue
            gif = None
            if gifs and s == 0:
                gif = media_path(media_dir, f"{method}_{q['id']}", 0, "gif")
                backend.save(video, gif)  # as stage 04 saves it
            res = backend.score(checklists[q["id"]], video)
            append_jsonl(
                path,
                {
                    "key": seed_key(method, q["id"], s),
                    "id": q["id"],
                    "method": method,
                    "seed": s,
                    "noise_seed": int(noise),
                    "query": q["query"],
                    "prompt": prompts[method][q["id"]],
                    **res,
                    "kinds": {str(x.id): x.kind for x in checklists[q["id"]]},
                    # relative to media_dir in the file: two runs in two folders write the same bytes
                    "gif": None if gif is None else str(gif.relative_to(media_dir)),
                },
            )
            counts["rendered"] += 1
    records = read_jsonl(path)[0] if path.exists() else []
    return [{**r, "gif": r.get("gif") and str(Path(media_dir) / r["gif"])} for r in records], counts


def sample_name(method: str, j: int) -> str:
    return f"{method}{SAMPLE_MARK}{j}"


def sampled_prompts(
    cfg, run_dir: Path, queries: list[dict], out_dir: Path
) -> tuple[dict[str, dict[str, list[str]]], list[str]]:
    """``({method: {id: [prompts]}}, notes)``: ``analysis.sampled`` prompts per query from each trained optimizer
    of ``analysis.sampled_methods`` (sft: 03_sft/model, vpo: 05_dpo/model), at ``analysis.sampled_temperature``
    and top-p 1, with the length and dtype its greedy held-out prompts had. Sampling is seeded per batch from the
    run seed and the batch's queries (:func:`vpolib.generation.batch_seed`; batches fixed by position) and
    appended to ``out_dir/sampled_<method>_k<n>_t<T>.jsonl``, so a rerun samples nothing twice and a model is
    loaded only when something is left. A method without a saved model is skipped with a note."""
    from types import SimpleNamespace

    acfg, out, notes = cfg.analysis, {}, []
    for method in acfg.sampled_methods:
        model_dir = optimizer_dir(run_dir, method)
        path = Path(out_dir) / f"sampled_{method}_k{acfg.sampled}_t{acfg.sampled_temperature:g}.jsonl"
        stage_cfg = cfg.sft if method == "sft" else cfg.dpo
        params = SimpleNamespace(samples_per_query=acfg.sampled, temperature=acfg.sampled_temperature,
                                 top_p=1.0, max_new_tokens=stage_cfg.max_new_tokens)  # fmt: skip
        loaded = {}

        def sample(
            texts, ids, sources, model_dir=model_dir, params=params, loaded=loaded, stage_cfg=stage_cfg
        ):
            if "fn" not in loaded:  # only when a batch is left to sample
                model, tok = load_optimizer(model_dir, device=cfg.device, dtype=stage_cfg.dtype)
                loaded["fn"] = sampler(model, tok, params, cfg.instruction, cfg.seed, cfg.generation_batch)
            return loaded["fn"](texts, ids, sources)

        done = {r["id"] for r in read_jsonl(path)[0]} if path.exists() else set()
        if not model_dir.exists() and any(q["id"] not in done for q in queries):
            notes.append(f"sampled decoding: {method} skipped (no saved model at {model_dir})")
            continue
        rows = sample_prompts(queries, path, sample, cfg.generation_batch)
        wanted = {q["id"] for q in queries}
        out[method] = {r["id"]: list(r["prompts"]) for r in rows if r["id"] in wanted}
    return out, notes


def sampled_videos(
    cfg, run_dir: Path, queries: list[dict], backend, out_dir: Path, seed_of
) -> tuple[list[dict], dict, list[str]]:
    """``(records, counts, notes)`` of sampled decoding: :func:`sampled_prompts`, each sample rendered with the
    ``analysis.eval_seeds`` eval seeds (the same noises as the greedy prompts: :func:`score_videos`, no GIFs) and
    scored against the original query, resumable in ``out_dir/sampled_eval_k<n>_t<T>.jsonl``. A record's
    method is :func:`sample_name` (``"vpo@0"``); :func:`vpolib.analysis.sampled_results` reads them."""
    acfg = cfg.analysis
    samples, notes = sampled_prompts(cfg, run_dir, queries, out_dir)
    prompts = {
        sample_name(m, j): {qid: texts[j] for qid, texts in by_id.items() if j < len(texts)}
        for m, by_id in samples.items()
        for j in range(acfg.sampled)
    }
    prompts = {m: p for m, p in prompts.items() if p}
    path = Path(out_dir) / f"sampled_eval_k{acfg.sampled}_t{acfg.sampled_temperature:g}.jsonl"
    records, counts = score_videos(
        backend, queries, prompts, path, out_dir, seed_of, acfg.video_batch, acfg.eval_seeds, gifs=False
    )
    return keep(records, prompts, acfg.eval_seeds), counts, notes


def save_prompts(
    path: Path, prompts: dict, video_prompts: dict, real: list[dict], shapes: list[dict]
) -> None:
    """prompts.json: every method's held-out prompts (``{method: {id: prompt}}``; the video side with the caption)
    and the ids of the real and ShapesWorld queries evaluated: what notebook 07 reads of notebook 06."""
    write_json(path, {"real": [r["id"] for r in real], "shapes": [r["id"] for r in shapes],
                      "prompts": prompts, "video_prompts": video_prompts})  # fmt: skip


def load_prompts(path: Path, heldout: list[dict]) -> tuple[list[dict], list[dict], dict, dict]:
    """``(real, shapes, prompts, video_prompts)`` from :func:`save_prompts`' file, the queries as the held-out
    split's records."""
    saved, by_id = read_json(path), {r["id"]: r for r in heldout}
    real, shapes = [by_id[i] for i in saved["real"]], [by_id[i] for i in saved["shapes"]]
    return real, shapes, saved["prompts"], saved["video_prompts"]
