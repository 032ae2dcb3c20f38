"""ShapesWorld model B: a second video model that differs from model A as Open-Sora differs from CogVideoX.

Model A (:mod:`vpolib.shapesworld.pipeline`) is a UNet trained on captions in one fixed style. Model B is

- **another denoiser**: a diffusion transformer (diffusers' ``PixArtTransformer2DModel``, the DiT family that
  Open-Sora's STDiT comes from) over 2x2 patches of the 24-channel clip, with cross-attention to the text in
  every block, instead of a convolutional UNet;
- **another text-encoder vocabulary**: it was trained on captions written by a second captioner that names
  colours, shapes and sizes with synonyms half the time ("a tiny crimson orb moves from the left to the
  right"), so its word-level tokenizer knows words model A maps to ``[UNK]`` and its preferences differ.

Same frames, resolution, scheduler and sampling as model A, so ``vpolib.shapesworld.generate`` and the
checklist reward work unchanged; ``load_pipeline`` picks the class from ``model_index.json``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

import torch
from diffusers import PixArtTransformer2DModel

from vpolib.shapesworld.pipeline import ShapesWorldPipeline, build_components
from vpolib.shapesworld.world import COLOUR_SYNONYMS, SHAPE_SYNONYMS, SIZE_SYNONYMS, caption

MODEL_B_DIR = "vpolib/assets/shapesworld_b"  # repo-relative, as ShapesWorldConfig.model_dir for model A


class ShapesWorldDiTPipeline(ShapesWorldPipeline):
    """Model B: the same text -> video pipeline with a transformer denoiser (``transformer``)."""

    def __init__(self, transformer, scheduler, text_encoder, tokenizer):
        super(ShapesWorldPipeline, self).__init__()
        self.register_modules(
            transformer=transformer, scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer
        )

    @property
    def denoiser(self):
        return self.transformer

    def denoise(self, sample: torch.Tensor, t, text: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, device=sample.device).reshape(-1).expand(sample.shape[0])  # [B]
        return self.transformer(sample, encoder_hidden_states=text, timestep=t).sample


def build_dit_components(
    tokenizer, res: int, frames: int, heads: int = 4, head_dim: int = 16, layers: int = 6, patch: int = 2
) -> dict:
    """Freshly initialised transformer, text encoder and schedulers for model B (the text encoder and the
    schedulers are model A's kind, over B's own vocabulary)."""
    parts = build_components(
        tokenizer, res, frames
    )  # text encoder (64 wide) + schedulers; its UNet is dropped
    parts.pop("unet")
    parts["transformer"] = PixArtTransformer2DModel(
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        in_channels=3 * frames,
        out_channels=3 * frames,
        num_layers=layers,
        cross_attention_dim=heads * head_dim,
        caption_channels=parts["text_encoder"].config.hidden_size,
        sample_size=res,
        patch_size=patch,
        norm_num_groups=8,
    )
    return parts


def caption_b(scene: dict, rng: random.Random, synonym_prob: float = 0.5) -> str:
    """Model B's training caption: model A's caption, or (with ``synonym_prob``) the same sentence with each
    colour, shape and size word independently swapped for a synonym with probability one half."""
    text = caption(scene)
    if rng.random() >= synonym_prob:
        return text
    swaps = {}
    for obj in scene["objects"]:
        for word, options in (
            (obj["colour"], COLOUR_SYNONYMS[obj["colour"]]),
            (obj["shape"], SHAPE_SYNONYMS[obj["shape"]]),
            (obj["size"], SIZE_SYNONYMS[obj["size"]]),
        ):
            if rng.random() < 0.5:
                swaps[word] = rng.choice(options)
    words = text.split(" ")
    out = []
    for w in words:
        core = w.rstrip(".")
        key = core.lower()
        if key in swaps:
            new = swaps[key].capitalize() if core[:1].isupper() else swaps[key]
            w = new + w[len(core) :]
        out.append(w)
    return " ".join(out)


@dataclass(frozen=True)
class Variant:
    """What differs between the ShapesWorld models when they are trained: how the networks are built, which
    pipeline class holds them and who writes the training captions."""

    build: Callable[..., dict]
    pipeline: type
    captioner: Callable[[dict, random.Random], str]


VARIANTS = {
    "a": Variant(build_components, ShapesWorldPipeline, lambda scene, rng: caption(scene)),
    "b": Variant(build_dit_components, ShapesWorldDiTPipeline, caption_b),
}
