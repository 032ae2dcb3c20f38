"""The ShapesWorld video model as a diffusers ``DiffusionPipeline``.

Frames are stacked as channels so a small 2D ``UNet2DConditionModel`` denoises a whole clip at once:
a clip [F, H, W, 3] is the sample [F*3, H, W] scaled to [-1, 1]. Text goes through a tiny CLIP text
encoder over a word-level tokenizer built locally from the captions (no hub downloads).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DiffusionPipeline, UNet2DConditionModel
from diffusers.utils import BaseOutput
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerFast

MAX_TOKENS = 32
SPECIAL = ["[PAD]", "[UNK]"]


@dataclass
class ShapesWorldOutput(BaseOutput):
    """``frames``: uint8 videos [B, F, H, W, 3]."""

    frames: np.ndarray


def to_sample(videos: torch.Tensor) -> torch.Tensor:
    """uint8 [B, F, H, W, 3] -> float [B, F*3, H, W] in [-1, 1]."""
    b, f, h, w, c = videos.shape
    return (videos.float() / 127.5 - 1).permute(0, 1, 4, 2, 3).reshape(b, f * c, h, w)


def to_video(sample: torch.Tensor) -> np.ndarray:
    """float [B, F*3, H, W] -> uint8 [B, F, H, W, 3]."""
    b, fc, h, w = sample.shape
    x = ((sample.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.reshape(b, fc // 3, 3, h, w).permute(0, 1, 3, 4, 2).numpy()


def build_tokenizer(corpus: list[str]) -> PreTrainedTokenizerFast:
    """A lowercase word-level tokenizer whose vocabulary is counted from ``corpus`` (ties broken alphabetically,
    so it is identical run to run); words outside it become [UNK]."""
    normalizer, pre = normalizers.Lowercase(), pre_tokenizers.Whitespace()
    counts = Counter(w for text in corpus for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    words = sorted(counts, key=lambda w: (-counts[w], w))
    vocab = {tok: i for i, tok in enumerate(SPECIAL + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer = normalizer, pre
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", model_max_length=MAX_TOKENS
    )


def build_components(tokenizer, res: int, frames: int, channels=(32, 32, 64), text_dim: int = 64) -> dict:
    """Freshly initialised unet, text encoder and schedulers (training uses DDPM, sampling DDIM).

    Cross-attention only at the coarsest level and the mid block: text sets global attributes (colour,
    shape, motion), and attention at full resolution doubled the step time on 2 CPU cores. The model predicts
    the clean clip ("sample"): a tiny UNet could not reproduce 24 channels of pixel noise (epsilon / v targets
    left the samples noisy after 1,000 steps), while clean clips are smooth and low-rank.
    """
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=text_dim,
            intermediate_size=2 * text_dim,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=MAX_TOKENS,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=None,
            eos_token_id=tokenizer.pad_token_id,
        )
    )  # pooled output unused; ids must lie inside the tiny vocab
    n = len(channels)
    unet = UNet2DConditionModel(
        sample_size=res,
        in_channels=3 * frames,
        out_channels=3 * frames,
        block_out_channels=tuple(channels),
        layers_per_block=1,
        down_block_types=("DownBlock2D",) * (n - 1) + ("CrossAttnDownBlock2D",),
        up_block_types=("CrossAttnUpBlock2D",) + ("UpBlock2D",) * (n - 1),
        cross_attention_dim=text_dim,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    noise = DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="sample",
        clip_sample=False,
    )
    sampler = DDIMScheduler.from_config(noise.config, timestep_spacing="trailing", set_alpha_to_one=True)
    return {
        "unet": unet,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler": sampler,
        "noise_scheduler": noise,
    }


class ShapesWorldPipeline(DiffusionPipeline):
    """Text -> uint8 video [B, F, H, W, 3] with classifier-free guidance."""

    model_cpu_offload_seq = "text_encoder->unet"

    def __init__(self, unet, scheduler, text_encoder, tokenizer):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer)

    @property
    def denoiser(self):
        """The network that denoises a clip (a UNet here; model B's is a transformer)."""
        return self.unet

    def denoise(self, sample: torch.Tensor, t, text: torch.Tensor) -> torch.Tensor:
        """The predicted clean clip [B, F*3, H, W] for noisy ``sample`` at timestep(s) ``t`` given ``text``."""
        return self.unet(sample, t, encoder_hidden_states=text).sample

    def encode(self, prompts: list[str]) -> torch.Tensor:
        """Token embeddings for the cross-attention. [B, MAX_TOKENS, D]"""
        ids = self.tokenizer(
            prompts, padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt"
        ).input_ids
        return self.text_encoder(ids.to(self.device)).last_hidden_state

    @torch.no_grad()
    def __call__(
        self,
        prompt,
        num_inference_steps: int = 20,
        guidance_scale: float = 3.0,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
    ) -> ShapesWorldOutput:
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        cfg = self.denoiser.config
        text = torch.cat([self.encode([""] * len(prompts)), self.encode(prompts)])  # [2B, T, D]
        shape = (len(prompts), cfg.in_channels, cfg.sample_size, cfg.sample_size)
        sample = (latents if latents is not None else torch.randn(shape, generator=generator)).to(
            self.device
        )  # [B, F*3, H, W]
        self.scheduler.set_timesteps(num_inference_steps)
        for t in self.progress_bar(self.scheduler.timesteps):
            uncond, cond = self.denoise(torch.cat([sample, sample]), t, text).chunk(2)
            pred = uncond + guidance_scale * (cond - uncond)
            sample = self.scheduler.step(pred, t, sample).prev_sample
        return ShapesWorldOutput(frames=to_video(sample.cpu()))
