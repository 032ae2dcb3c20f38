"""VisionReward-Video as its own job: every rendered video answered on the 64-question checklist.

    accelerate launch --num_processes 8 -m vpolib.visionreward --run-dir RUN      # one process per GPU
    python -m vpolib.visionreward --run-dir RUN --checklist frame-stats          # the CPU stand-in

It reads ``RUN/04_feedback/renders.jsonl`` (the sharded renderer's merge, ``python -m vpolib.video render``),
each process answers every n-th video into ``04_feedback/shards/scores-<i>-of-<n>.jsonl`` (resumable per
video), and rank 0 merges them into 04's own ``scores.jsonl`` and ``checklists.jsonl``. Notebook 04 then
finds every video scored and goes straight to the pairs.

The checklist is VisionReward-Video's 64 questions with the reference's 64 weights
(``assets/visionreward/video_checklist.json``): a "yes" adds its weight (``get_score`` in thu-coai/VPO
``src/process_data.py``), and strict dominance reads all 64 answers, so a zero-weight answer can veto a
pair (:func:`vpolib.dominance.drop_reason`). The VLM is CogVLM2-Video with remote code written for
transformers 4.42, so this job runs in its own environment (README, "Running the paper's setting"):
this module imports only numpy, torch and vpolib's light modules.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vpolib import shards
from vpolib.checklist import Question, frame_stats_answer, frame_stats_checklist, question_records, tally
from vpolib.io import append_jsonl, done_keys, read_jsonl, write_jsonl
from vpolib.paths import REPO_ROOT
from vpolib.progress import track

CHECKLIST = REPO_ROOT / "vpolib" / "assets" / "visionreward" / "video_checklist.json"
MAX_FRAMES = 24  # VisionReward-Video sees at most 24 frames


def questions() -> list[dict]:
    """The 64 checklist entries ``{"id", "text", "dimension", "weight", "paper_weight"}``, in weight order."""
    return json.loads(CHECKLIST.read_text())["questions"]


def checklist(query: str) -> list[Question]:
    """VisionReward-Video's 64 weighted questions about a video made for ``query`` (the ORIGINAL query)."""
    return [
        Question(str(q["id"]), q["text"].replace("[[prompt]]", query), q["weight"], "visionreward")
        for q in questions()
    ]


def per_second(video: np.ndarray, fps: float, max_frames: int = MAX_FRAMES) -> np.ndarray:
    """The frame nearest each whole second, at most ``max_frames`` (VisionReward's "chat" sampling)."""
    seconds = np.arange(int(round((len(video) - 1) / fps)) + 1)
    index = np.minimum(np.round(seconds * fps).astype(int), len(video) - 1)
    return video[index[:max_frames]]  # [T, H, W, 3]


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """``(frames [F, H, W, 3] uint8, fps)`` of an mp4 or GIF."""
    import imageio.v2 as imageio

    reader = imageio.get_reader(str(path))
    meta = reader.get_meta_data()
    fps = meta.get("fps") or (1000.0 / meta["duration"] if meta.get("duration") else 8.0)
    frames = np.stack([np.asarray(f)[..., :3] for f in reader])
    reader.close()
    return frames, float(fps)


def vlm_answerer(model_path: str, device: str, dtype: str = "bfloat16") -> Callable:
    """``answer(frames [T, H, W, 3], questions) -> ["yes" | "no" | other]`` from VisionReward-Video
    (CogVLM2-Video, remote code): the first greedily generated token per question, as its
    ``inference-video.py`` does. Not exercised by the tests (it needs the hub weights and a GPU)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = getattr(torch, dtype)
    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(model_path, torch_dtype=torch_dtype, trust_remote_code=True)
    model = model.eval().to(device)

    def answer(frames: np.ndarray, asked: list[Question]) -> list[str]:
        video = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2)  # [C, T, H, W]
        out = []
        for q in asked:
            enc = model.build_conversation_input_ids(
                tokenizer=tokenizer, query=q.text, images=[video], history=[], template_version="chat"
            )
            inputs = {
                k: enc[k].unsqueeze(0).to(device) for k in ("input_ids", "token_type_ids", "attention_mask")
            }
            inputs["images"] = [[enc["images"][0].to(device).to(torch_dtype)]]
            with torch.no_grad():
                ids = model.generate(**inputs, max_new_tokens=1, do_sample=False, pad_token_id=128002)
            out.append(tokenizer.decode(ids[0, inputs["input_ids"].shape[1] :]))
        return out

    return answer


def score_shard(
    renders: list[dict], out_dir: Path, ask: Callable, answer: Callable, shard: int, num_shards: int
) -> Path:
    """Answer this shard's videos (``renders[shard::num_shards]``) against their ORIGINAL query's checklist
    (``ask(query)``), appending 04's scored-video records; resumable per video key."""
    log = shards.shard_file(out_dir, "scores", shard, num_shards)
    done = done_keys(log, "key")
    todo = [r for r in renders[shard::num_shards] if r["key"] not in done]
    for rec in track(todo, desc=f"VisionReward shard {shard}/{num_shards}"):
        frames, fps = read_video(Path(out_dir) / rec["video"])
        asked = ask(rec["query"])
        result = tally(asked, answer(per_second(frames, fps), asked))
        fields = ("key", "id", "k", "query", "prompt", "video")
        append_jsonl(log, {**{f: rec[f] for f in fields}, **result, "questions": question_records(asked)})
    return log


def merge_scores(out_dir: Path) -> list[dict]:
    """Every shard's scores merged into ``scores.jsonl`` (sorted by query id, k; a video scored twice is kept
    once) and each query's checklist into ``checklists.jsonl``: the files notebook 04 writes itself."""
    rows = shards.read_shards(out_dir, "scores")
    lists = {r["id"]: {"id": r["id"], "query": r["query"], "questions": r["questions"]} for r in rows}
    write_jsonl(
        Path(out_dir) / "scores.jsonl", [{k: v for k, v in r.items() if k != "questions"} for r in rows]
    )
    write_jsonl(Path(out_dir) / "checklists.jsonl", list(lists.values()))
    return rows


def main(argv: list[str] | None = None) -> int:
    """``[accelerate launch -m] python -m vpolib.visionreward --run-dir RUN``: this process's shard of the videos
    scored, then rank 0 merges."""
    # accelerate and torch are this job's environment's (README), not needed to import the module
    import torch
    from accelerate import PartialState

    parser = argparse.ArgumentParser(
        prog="python -m vpolib.visionreward", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--run-dir", help="scores RUN/04_feedback (default stage dir)")
    parser.add_argument("--stage-dir", help="any dir holding a renders.jsonl (e.g. a benchmark's)")
    parser.add_argument("--checklist", choices=["visionreward", "frame-stats"], default="visionreward")
    parser.add_argument("--model", default="THUDM/VisionReward-Video")
    parser.add_argument("--dtype", default="bfloat16")
    args = parser.parse_args(argv)
    if not (args.run_dir or args.stage_dir):
        parser.error("give --run-dir or --stage-dir")
    state = PartialState(cpu=not torch.cuda.is_available())
    out_dir = Path(args.stage_dir) if args.stage_dir else Path(args.run_dir) / "04_feedback"
    renders = read_jsonl(out_dir / "renders.jsonl")[0]
    if args.checklist == "visionreward":
        ask, answer = checklist, vlm_answerer(args.model, str(state.device), args.dtype)
    else:
        ask, answer = frame_stats_checklist, frame_stats_answer
    log = score_shard(renders, out_dir, ask, answer, state.process_index, state.num_processes)
    return shards.finish(state, log, lambda: merge_scores(out_dir), "scored videos", out_dir / "scores.jsonl")


if __name__ == "__main__":
    raise SystemExit(main())
