"""Text-to-video backends and checklist rewards behind one interface (stage 04).

A backend renders prompts to uint8 videos ``[B, F, H, W, 3]`` (``render(prompts, seed)``), gives a query's
checklist of weighted yes/no questions (``checklist(query)``), scores one video against it keeping every
answer, not only the sum (``score(questions, video)``, see :func:`vpolib.checklist.tally`), and saves it (``save``):

- ``shapesworld``: the project's laptop-scale world (:mod:`vpolib.shapesworld`) and its detector checklist.
- ``cogvideox``: diffusers' ``CogVideoXPipeline`` (the paper's generator) with a VisionReward-style
  :class:`vpolib.checklist.ChecklistReward`. ``video.cogvideox_model: tiny`` builds an architecture-identical
  CogVideoX from small configs with a locally trained T5 tokenizer (tests; nothing is downloaded).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from vpolib import shards, visionreward
from vpolib.checklist import ChecklistReward, Question, frame_stats_answer, frame_stats_checklist, tally
from vpolib.config import load_config
from vpolib.io import append_jsonl, done_keys, read_jsonl, write_jsonl
from vpolib.noise import video_seed
from vpolib.paths import resolve
from vpolib.run import parse_sets


def to_uint8(frames) -> np.ndarray:
    """Float frames in [0, 1] (diffusers' ``output_type="np"``) -> uint8 ``[B, F, H, W, 3]``."""
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    return (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)


# ---- CogVideoX ---------------------------------------------------------------------------------------


def build_cogvideox(source, dtype: str = "float32", device: str = "cpu", vae_tiling: bool = False):
    """The one place a ``CogVideoXPipeline`` is built: from a hub id / local dir, or a dict of components.

    ``vae_tiling``: decode in slices and tiles (CogVideoX's model card lists it among the memory savers
    behind its single-GPU figures)."""
    import torch
    from diffusers import CogVideoXPipeline

    torch_dtype = getattr(torch, dtype)
    if isinstance(source, dict):
        pipe = CogVideoXPipeline(**source)
    else:
        pipe = CogVideoXPipeline.from_pretrained(str(source), torch_dtype=torch_dtype)
    pipe.set_progress_bar_config(disable=True)
    if vae_tiling:
        pipe.vae.enable_slicing()
        pipe.vae.enable_tiling()
    return pipe.to(device=device, dtype=torch_dtype)


def train_t5_tokenizer(texts: list[str], vocab_size: int = 256):
    """A T5 tokenizer (Unigram) trained here on ``texts``: replaces the hub's tiny-random-t5 tokenizer."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import T5Tokenizer

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"
    )
    tok.train_from_iterator(texts, trainer)
    vocab = [tuple(v) for v in json.loads(tok.to_str())["model"]["vocab"]]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def tiny_cogvideox_components(texts: list[str], seed: int = 0) -> dict:
    """CogVideoX's real classes at toy size (diffusers' own test configs): 16x16, 9 frames, in eval mode."""
    import torch
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    tokenizer = train_t5_tokenizer(texts)
    torch.manual_seed(seed)
    text_encoder = T5EncoderModel(
        T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=1, num_heads=4)
    )
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=4,
        attention_head_dim=8,
        in_channels=4,
        out_channels=4,
        time_embed_dim=2,
        text_embed_dim=32,
        num_layers=1,
        sample_width=2,
        sample_height=2,
        sample_frames=9,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=16,
    )
    vae = AutoencoderKLCogVideoX(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    )
    for module in (text_encoder, transformer, vae):
        module.eval()  # freshly built modules are in training mode (dropout): outputs would not repeat
    return {
        "tokenizer": tokenizer,
        "text_encoder": text_encoder,
        "vae": vae,
        "transformer": transformer,
        "scheduler": CogVideoXDDIMScheduler(),
    }


# Call arguments of the tiny model (its text length and sizes are fixed by the configs above).
TINY_CALL = {"height": 16, "width": 16, "num_frames": 9, "num_inference_steps": 2, "max_sequence_length": 16}


class CogVideoXBackend:
    """CogVideoX renders, a :class:`ChecklistReward` scores. ``call`` goes to the pipeline unchanged."""

    def __init__(self, pipe, reward: ChecklistReward, call: dict):
        self.pipe, self.reward, self.call = pipe, reward, call

    def render(self, prompts: list[str], seed: int | list[int]) -> np.ndarray:
        """``seed``: one for the batch, or one per video (its own generator: independent of the batch)."""
        import torch

        gen = (
            [torch.Generator().manual_seed(s) for s in seed]
            if isinstance(seed, list)
            else torch.Generator().manual_seed(seed)
        )
        out = self.pipe(prompt=prompts, output_type="np", generator=gen, **self.call)
        return to_uint8(out.frames)  # [B, F, H, W, 3]

    def checklist(self, query: str) -> list[Question]:
        return self.reward.checklist(query)

    def score(self, questions: list[Question], video: np.ndarray) -> dict:
        return self.reward.score(questions, video)

    scale = 1  # frames are saved at their own size

    def save(self, video: np.ndarray, gif: Path, mp4: bool = False) -> None:
        save_media(video, gif, mp4, self.scale)


# ---- ShapesWorld -------------------------------------------------------------------------------------


class ShapesWorldBackend:
    """Adapter over :mod:`vpolib.shapesworld`: its pipeline renders, its detector checklist scores."""

    def __init__(self, model_dir: str, steps: int, guidance: float):
        from vpolib import shapesworld  # imports torch: only when a ShapesWorld backend is built

        self.sw, self.steps, self.guidance = shapesworld, steps, guidance
        self.pipe = shapesworld.load_pipeline(resolve(model_dir))

    def render(self, prompts: list[str], seed: int | list[int]) -> np.ndarray:
        return to_uint8(self.sw.generate(self.pipe, prompts, seed, self.steps, self.guidance))

    def checklist(self, query: str) -> list:
        return self.sw.checklist(query)

    def score(self, questions: list, video: np.ndarray) -> dict:
        res = self.sw.score_video(questions, video)
        answers = res["answers"]
        if isinstance(answers, dict):
            answers = [answers.get(q.id, answers.get(str(q.id))) for q in questions]
        return tally(questions, answers)

    scale = 8  # 16x16 clips are saved upscaled (nearest neighbour) so they can be seen

    def save(self, video: np.ndarray, gif: Path, mp4: bool = False) -> None:
        save_media(video, gif, mp4, self.scale)


def make_video_backend(cfg, texts: list[str] | None = None):
    """The backend the profile names (``video.backend``); ``texts`` train the tiny model's tokenizer."""
    fb = cfg.video
    if fb.backend == "shapesworld":
        sw = cfg.shapesworld
        return ShapesWorldBackend(sw.model_dir, sw.num_inference_steps, sw.guidance_scale)
    if fb.backend != "cogvideox":
        raise ValueError(f"video.backend must be shapesworld or cogvideox, got {fb.backend!r}")
    if fb.cogvideox_model == "tiny":
        from diffusers.utils import logging

        logging.set_verbosity_error()  # its 16-token text window truncates every prompt: one warning each
        source, call = tiny_cogvideox_components(texts or ["a video"], cfg.seed), TINY_CALL
    else:
        source, call = fb.cogvideox_model, {}
    pipe = build_cogvideox(source, fb.dtype, cfg.device, fb.vae_tiling)
    call = {**call, **fb.cogvideox_call}
    if fb.reward == "frame-stats":
        reward = ChecklistReward(frame_stats_checklist, frame_stats_answer)
    elif fb.reward == "visionreward":
        # the 64 questions in this process; at scale, VisionReward runs as its own sharded job instead
        vlm = visionreward.vlm_answerer(fb.reward_model, cfg.device, fb.dtype)
        reward = ChecklistReward(
            visionreward.checklist, lambda video, asked: vlm(visionreward.per_second(video, 8.0), asked)
        )
    else:
        raise ValueError(f"video.reward must be frame-stats or visionreward, got {fb.reward!r}")
    return CogVideoXBackend(pipe, reward, call)


def media_path(stage_dir: Path, query_id: str, k: int, ext: str) -> Path:
    """Where video ``k`` of a query is saved (ids are made file-safe)."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in query_id)
    return Path(stage_dir) / "videos" / f"{safe}_{k}.{ext}"


FPS = 8  # every saved video plays at 8 frames per second (CogVideoX's frame rate)


def save_video(video: np.ndarray, path: str | Path, scale: int = 1) -> Path:
    """THE video writer: one uint8 video ``[F, H, W, 3]`` as a looping GIF or an mp4 (by the file's suffix),
    at :data:`FPS`, upscaled ``scale`` times (nearest neighbour)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.asarray(video).repeat(scale, axis=1).repeat(scale, axis=2)  # [F, H*s, W*s, 3]
    if path.suffix == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=1000 // FPS, loop=0)
    elif path.suffix == ".mp4":
        import imageio.v2 as imageio

        imageio.mimsave(path, list(frames), fps=FPS, macro_block_size=1)
    else:
        raise ValueError(f"save_video writes .gif or .mp4, not {path.name}")
    return path


def save_media(video: np.ndarray, gif: Path, mp4: bool = False, scale: int = 1) -> None:
    """A video as a GIF, and as an mp4 next to it when asked (:func:`save_video`)."""
    save_video(video, gif, scale)
    if mp4:
        save_video(video, Path(gif).with_suffix(".mp4"), scale)


# ---- sharded rendering (the full profile: one process per GPU) ---------------------------------------


def render_shard(
    rows: list[dict], backend, out_dir: Path, seed: int, shard: int, num_shards: int, mp4_only: bool = False
) -> Path:
    """Render this shard's queries (``rows[shard::num_shards]``) into ``out_dir/videos`` and log each video
    to this shard's file; resumable per video (``"<id>/<k>"``).

    Every query is rendered with its own seed (:func:`vpolib.noise.video_seed`), so the videos do not
    depend on how many shards there are. Scoring is a separate job (VisionReward runs in its own
    environment), so this only renders. ``mp4_only``: the full profile writes an mp4 and no GIF.
    """
    log = shards.shard_file(out_dir, "renders", shard, num_shards)
    done = done_keys(log, "key")
    for row in rows[shard::num_shards]:  # strided: neighbouring queries (similar lengths) spread over shards
        todo = [k for k in range(len(row["prompts"])) if f"{row['id']}/{k}" not in done]
        if not todo:
            continue
        videos = backend.render(
            [row["prompts"][k] for k in todo], video_seed(seed, row["id"])
        )  # [B, F, H, W, 3]
        for k, clip in zip(todo, videos, strict=True):
            path = media_path(out_dir, row["id"], k, "mp4" if mp4_only else "gif")
            if mp4_only:
                save_video(clip, path, backend.scale)
            else:
                backend.save(clip, path)
            append_jsonl(
                log,
                {
                    "key": f"{row['id']}/{k}",
                    "id": row["id"],
                    "k": k,
                    "query": row["query"],
                    "prompt": row["prompts"][k],
                    "video": str(path.relative_to(out_dir)),
                    "shard": shard,
                },
            )
    return log


def merge_renders(out_dir: Path, path: Path | None = None) -> list[dict]:
    """Every shard's render log merged into ``out_dir/renders.jsonl``: one record per video, sorted by
    (query id, k); a video logged twice (a shard re-run with another shard count) is kept once."""
    rows = shards.read_shards(out_dir, "renders")
    write_jsonl(path or Path(out_dir) / "renders.jsonl", rows)
    return rows


def render_main(argv: list[str] | None = None) -> int:
    """``accelerate launch [--num_processes N] -m vpolib.video render --run-dir RUN [--profile P --set k=v]``:
    each process renders its shard of ``RUN/04_feedback/prompts.jsonl`` (or ``--stage-dir``'s) on its own
    device; rank 0 merges."""
    from accelerate import PartialState  # the render job's launcher: not needed to import the module

    parser = argparse.ArgumentParser(prog="python -m vpolib.video render")
    parser.add_argument("--run-dir", help="renders RUN/04_feedback (default stage dir)")
    parser.add_argument("--stage-dir", help="any dir holding a prompts.jsonl (e.g. a benchmark's)")
    parser.add_argument("--prompts", help="the rows to render (default: the stage dir's prompts.jsonl)")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if not (args.run_dir or args.stage_dir):
        parser.error("give --run-dir or --stage-dir")
    cfg = load_config(args.profile, parse_sets(args.set))
    state = PartialState(cpu=cfg.device == "cpu")  # one process per GPU: each builds the pipeline on its own
    if cfg.video.cogvideox_model == "tiny" and state.num_processes > 1:
        # its T5 tokenizer is trained per process (Unigram training is not reproducible): ranks would differ
        raise SystemExit("video.cogvideox_model=tiny is built per process: save it as a dir first")
    cfg.device = str(state.device)
    out_dir = Path(args.stage_dir) if args.stage_dir else Path(args.run_dir) / "04_feedback"
    rows = read_jsonl(args.prompts or out_dir / "prompts.jsonl")[0]
    backend = make_video_backend(
        cfg, texts=[p for r in rows for p in r["prompts"]]
    )  # same texts on every rank
    log = render_shard(
        rows,
        backend,
        out_dir,
        cfg.seed,
        state.process_index,
        state.num_processes,
        mp4_only=cfg.feedback.save_mp4 and cfg.feedback.mp4_only,
    )
    return shards.finish(state, log, lambda: merge_renders(out_dir), "videos", out_dir / "renders.jsonl")


if __name__ == "__main__":
    if sys.argv[1:2] != ["render"]:
        raise SystemExit(
            "usage: python -m vpolib.video render --run-dir RUN | --stage-dir DIR [--profile P] [--set k=v]"
        )
    raise SystemExit(render_main(sys.argv[2:]))
