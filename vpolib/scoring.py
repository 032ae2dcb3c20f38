"""Scored videos: each sampled prompt rendered with its noise seeds and scored on its ORIGINAL query's checklist.

Stage 04 renders and scores in this process (``out_dir/scores.jsonl``, resumable), or, in the full profile, reads
what the sharded render and VisionReward jobs wrote (:func:`run_jobs`). Each query's checklist is listed in
``checklists.jsonl``, and a chunk that fails is a recorded skip (``skips.jsonl``).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

from vpolib.checklist import Question, question_records
from vpolib.io import append_jsonl, done_keys, read_jsonl, write_jsonl
from vpolib.noise import reward_seed, video_seed
from vpolib.paths import REPO_ROOT
from vpolib.progress import run_streamed, track
from vpolib.video import make_video_backend, media_path


def score_texts(backend, texts: list[str], queries: list[str], seeds: list[int], batch: int = 32):
    """Render ``texts[i]`` from noise ``seeds[i]`` and score the video on ``queries[i]``'s checklist, ``batch``
    videos per render call; yields ``(i, result)`` in order, chunk by chunk (a caller that logs as it goes
    resumes where it stopped)."""
    for start in range(0, len(texts), batch):
        clips = backend.render(texts[start : start + batch], seeds[start : start + batch])  # [B, F, H, W, 3]
        for i, clip in enumerate(clips, start):
            yield i, backend.score(backend.checklist(queries[i]), clip)


def render_and_score(
    rows: list[dict],
    backend,
    out_dir: Path,
    seed: int,
    save_mp4: bool = False,
    batch: int = 32,
    seeds: int = 1,
    round_: int = 1,
) -> list[dict]:
    """Render each query's prompts, score every video against the ORIGINAL query (``out_dir/scores.jsonl``).

    Each prompt is rendered with ``seeds`` noise seeds (:func:`vpolib.noise.reward_seed`: keyed by query id,
    seed index and ``round_``); all k prompts of a query share them, so they differ only by their prompt. Seed 0
    of round 1 is ``video_seed(seed, id)``, the paper recipe's one render. Videos are rendered ``batch`` at a time
    in chunks fixed by position; a chunk with a missing video is rendered again whole and only what is missing is
    written, so a resumed run writes what an uninterrupted one would. Each query's checklist goes to
    ``checklists.jsonl``; a chunk whose rendering or scoring fails is recorded in ``skips.jsonl`` and skipped, and
    finished work is kept. GIFs are saved for seed 0. ``backend=None``: the videos were rendered and scored by
    :func:`run_jobs`, and only read here.
    """
    out_dir = Path(out_dir)
    scores, checklists = out_dir / "scores.jsonl", out_dir / "checklists.jsonl"
    done, listed = done_keys(scores, "key"), done_keys(checklists, "id")
    key = lambda row, k, s: f"{row['id']}/{k}" + (f"#{s}" if s else "")  # noqa: E731 - seed 0: the paper's key
    videos = [(row, k, s) for row in rows for k in range(len(row["prompts"])) for s in range(seeds)]
    chunks = [videos[i : i + batch] for i in range(0, len(videos), batch)]
    todo = [c for c in chunks if any(key(*v) not in done for v in c)]
    if todo and backend is None:
        missing = sum(key(*v) not in done for c in todo for v in c)
        raise RuntimeError(f"{missing} videos are missing from {scores}: rerun the render and scoring jobs")
    questions: dict[str, list] = {}
    for chunk in track(todo, desc="render + score"):
        try:
            for row, _, _ in chunk:
                if row["id"] not in questions:
                    questions[row["id"]] = backend.checklist(row["query"])
                if row["id"] not in listed:
                    append_jsonl(
                        checklists,
                        {
                            "id": row["id"],
                            "query": row["query"],
                            "questions": question_records(questions[row["id"]]),
                        },
                    )
                    listed.add(row["id"])
            clips = backend.render(
                [row["prompts"][k] for row, k, _ in chunk],
                [reward_seed(seed, row["id"], s, round_) for row, _, s in chunk],
            )  # [B, F, H, W, 3]
            for (row, k, s), clip in zip(chunk, clips, strict=True):
                if key(row, k, s) in done:
                    continue
                gif = media_path(out_dir, row["id"], k, "gif")
                if s == 0:
                    backend.save(clip, gif, save_mp4)
                append_jsonl(
                    scores,
                    {
                        "key": key(row, k, s),
                        "id": row["id"],
                        "k": k,
                        "seed_index": s,
                        "query": row["query"],
                        "source": row.get("source"),
                        "prompt": row["prompts"][k],
                        "video": str(gif.relative_to(out_dir)),
                        **backend.score(questions[row["id"]], clip),
                    },
                )
                done.add(key(row, k, s))
        except Exception as err:  # a failing chunk is a recorded skip, not a lost run
            for qid in dict.fromkeys(row["id"] for row, _, _ in chunk):
                append_jsonl(out_dir / "skips.jsonl", {"id": qid, "reason": f"{type(err).__name__}: {err}"})
    return read_jsonl(scores)[0] if scores.exists() else []


def run_jobs(run_dir: Path, profile: str, overrides: dict, cfg, rows: list[dict]) -> list[dict]:
    """The full profile's render and score of ``rows`` (written to ``render_queue.jsonl``): ``accelerate
    launch -m vpolib.video render``, then the VisionReward job (``fb.visionreward_launcher``, its own
    environment, ``cfg.video``'s reward), logs streamed. Both are sharded and resumable, and write the ``scores.jsonl`` /
    ``checklists.jsonl`` that :func:`render_and_score` then finds done. Returns the scored videos."""
    fb, vid = cfg.feedback, cfg.video
    run_dir = Path(run_dir).resolve()
    queue = write_jsonl(run_dir / "04_feedback" / "render_queue.jsonl", rows)
    sets = [f"--set={k}={json.dumps(v)}" for k, v in overrides.items()]  # JSON is YAML: parse_sets reads it
    procs = ["--num_processes", str(fb.render_processes)] if fb.render_processes else []
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    launch = [sys.executable, "-m", "accelerate.commands.launch", *procs]
    run_streamed(
        [
            *launch,
            "-m",
            "vpolib.video",
            "render",
            "--run-dir",
            run_dir,
            "--prompts",
            queue,
            "--profile",
            profile,
            *sets,
        ],
        REPO_ROOT,
        env,
    )
    checklist = "visionreward" if vid.reward == "visionreward" else "frame-stats"
    score = [*shlex.split(fb.visionreward_launcher), "-m", "vpolib.visionreward", "--run-dir", run_dir]
    run_streamed(
        [*score, "--checklist", checklist, "--model", vid.reward_model, "--dtype", vid.dtype], REPO_ROOT, env
    )
    return read_jsonl(run_dir / "04_feedback" / "scores.jsonl")[0]


def scoring_backend(cfg, run_dir: Path, profile: str, overrides: dict, rows: list[dict], texts: list[str]):
    """The video backend that renders and scores 04's videos in this process, or ``None`` after
    :func:`run_jobs` has rendered and scored ``rows`` as sharded jobs (``feedback.render_jobs``)."""
    if cfg.feedback.render_jobs:
        run_jobs(run_dir, profile, overrides, cfg, rows)
        return None
    return make_video_backend(cfg, texts=texts)


def one_video(row: dict, backend, out_dir: Path, seed: int) -> tuple[list, dict]:
    """``(questions, result)`` for a query's first video: rendered and scored here, or (``backend=None``) read
    from the files :func:`run_jobs` wrote."""
    if backend is None:
        result = next(
            v for v in read_jsonl(Path(out_dir) / "scores.jsonl")[0] if v["key"] == f"{row['id']}/0"
        )
        listed = next(c for c in read_jsonl(Path(out_dir) / "checklists.jsonl")[0] if c["id"] == row["id"])
        return [Question(**q) for q in listed["questions"]], result
    questions = backend.checklist(row["query"])
    clip = backend.render([row["prompts"][0]], [video_seed(seed, row["id"])])[0]  # [F, H, W, 3] uint8
    return questions, backend.score(questions, clip)


def skipped_queries(out_dir: Path, scored: list[dict]) -> dict[str, str]:
    """Queries of ``out_dir/skips.jsonl`` that have no scored video, with the reason; nothing scored at all
    stops here."""
    path = Path(out_dir) / "skips.jsonl"
    skips = read_jsonl(path)[0] if path.exists() else []
    done = {v["id"] for v in scored}
    skipped = {s["id"]: s["reason"] for s in skips if s["id"] not in done}
    if not scored:
        raise RuntimeError(f"no video was scored ({len(skipped)} queries skipped): see {path}")
    return skipped


def read_checklists(out_dir: Path) -> dict[str, list[dict]]:
    """Each query's checklist as :func:`render_and_score` listed it: query id -> questions."""
    return {c["id"]: c["questions"] for c in read_jsonl(Path(out_dir) / "checklists.jsonl")[0]}


def score_frame(scored: list[dict]):
    """Scored videos as a table, with ``fraction`` = score / max_score."""
    import pandas as pd

    frame = pd.DataFrame(scored)
    frame["fraction"] = frame["score"] / frame["max_score"]
    return frame
