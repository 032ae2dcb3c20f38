"""ShapesWorld: a laptop-scale text-to-video world where prompts measurably matter.

world (scenes, captions, user queries) -> render (numpy clips, GIF/mp4) -> pipeline (the trained diffusers
video model) -> reward (checklist questions answered by pixel detectors).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from vpolib.config import ShapesWorldConfig
from vpolib.paths import resolve
from vpolib.shapesworld.model_b import ShapesWorldDiTPipeline
from vpolib.shapesworld.pipeline import ShapesWorldPipeline
from vpolib.shapesworld.render import render
from vpolib.shapesworld.reward import checklist, score_video, warn_if_constant
from vpolib.shapesworld.world import caption, make_queries

__all__ = [
    "ShapesWorldPipeline",
    "caption",
    "checklist",
    "generate",
    "load_pipeline",
    "make_queries",
    "render",
    "score_video",
    "warn_if_constant",
]


def load_pipeline(path: str | Path | None = None) -> ShapesWorldPipeline:
    """The trained pipeline (default: the committed weights at ShapesWorldConfig.model_dir), in eval mode."""
    path = resolve(path or ShapesWorldConfig.model_dir)
    if not (path / "model_index.json").exists():
        raise FileNotFoundError(
            f"no ShapesWorld pipeline at {path}; train one with scripts/train_shapesworld.py"
        )
    cls = ShapesWorldPipeline
    if json.loads((path / "model_index.json").read_text()).get("_class_name") == "ShapesWorldDiTPipeline":
        cls = ShapesWorldDiTPipeline  # model B
    pipe = cls.from_pretrained(path)
    pipe.denoiser.eval()
    pipe.text_encoder.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(
    pipe: ShapesWorldPipeline,
    prompts: list[str],
    seed: int | list[int],
    steps: int = 20,
    guidance: float = 3.0,
    batch_size: int = 64,
) -> np.ndarray:
    """Videos for ``prompts``: uint8 [B, F, H, W, 3]. With one ``seed`` the i-th video's starting noise depends
    on (seed, i, batch_size), so two prompt lists of the same length get the same noise (paired comparisons);
    with a list, video i starts from its own noise ``seed[i]`` (independent of the batch it is rendered in)."""
    if isinstance(seed, int):
        generator, latents = torch.Generator().manual_seed(seed), None
    else:
        cfg = pipe.denoiser.config
        shape = (cfg.in_channels, cfg.sample_size, cfg.sample_size)
        generator = None
        latents = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in seed])
    chunks = [
        pipe(
            prompts[i : i + batch_size],
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=generator,
            latents=None if latents is None else latents[i : i + batch_size],
        ).frames
        for i in range(0, len(prompts), batch_size)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0,), dtype=np.uint8)
