"""Train the ShapesWorld pipeline on pre-rendered (caption, clip) pairs; resumable from checkpoints."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.training_utils import EMAModel

from vpolib.shapesworld.model_b import VARIANTS
from vpolib.shapesworld.pipeline import ShapesWorldPipeline, build_tokenizer, to_sample
from vpolib.shapesworld.render import FRAMES, RES, render
from vpolib.shapesworld.world import caption, sample_scene


def make_dataset(
    n: int, seed: int, res: int = RES, frames: int = FRAMES, captioner=None
) -> tuple[np.ndarray, list[str]]:
    """``n`` random scenes rendered once: (clips uint8 [N, F, H, W, 3], captions). ``captioner(scene, rng)``
    writes the captions (default: the world's fixed style; model B's has its own, see model_b.caption_b)."""
    rng = random.Random(f"shapesworld-train-{seed}")
    scenes = [sample_scene(rng) for _ in range(n)]
    if captioner is None:
        texts = [caption(s) for s in scenes]
    else:
        crng = random.Random(f"shapesworld-captions-{seed}")
        texts = [captioner(s, crng) for s in scenes]
    return np.stack([render(s, res, frames) for s in scenes]), texts


def train(
    out_dir: str | Path,
    n_clips: int = 30000,
    steps: int = 4000,
    batch: int = 64,
    lr: float = 1e-3,
    cond_dropout: float = 0.1,
    ema_decay: float = 0.995,
    save_every: int = 250,
    seed: int = 0,
    log=print,
    model: str = "a",
) -> ShapesWorldPipeline:
    """Train from scratch (or resume from ``out_dir/train_state.pt``); saves the EMA pipeline to ``out_dir``.

    ``model``: "a" (the UNet on fixed-style captions) or "b" (the transformer on its own captions);
    see :data:`vpolib.shapesworld.model_b.VARIANTS`."""
    out_dir = Path(out_dir)
    variant = VARIANTS[model]
    torch.manual_seed(seed)
    clips, captions = make_dataset(n_clips, seed, captioner=None if model == "a" else variant.captioner)
    tokenizer = build_tokenizer(captions)
    parts = variant.build(tokenizer, clips.shape[2], clips.shape[1])
    noise_sched = parts.pop("noise_scheduler")
    pipe = variant.pipeline(**parts)
    modules = torch.nn.ModuleList([pipe.denoiser, pipe.text_encoder])
    ids = tokenizer(
        captions, padding="max_length", max_length=32, truncation=True, return_tensors="pt"
    ).input_ids
    empty = tokenizer([""], padding="max_length", max_length=32, return_tensors="pt").input_ids  # [1, T]
    data = torch.from_numpy(clips)  # [N, F, H, W, 3] uint8
    opt = torch.optim.AdamW(modules.parameters(), lr=lr, weight_decay=0.0)
    ema = EMAModel(modules.parameters(), decay=ema_decay)
    state_path, start = out_dir / "train_state.pt", 0
    if state_path.exists():
        state = torch.load(state_path, weights_only=False)
        modules.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        ema.load_state_dict(state["ema"])
        torch.set_rng_state(state["rng"])
        start = state["step"]
        log(f"resumed at step {start}")
    modules.train()
    t0 = time.time()
    for step in range(start, steps):
        idx = torch.randint(0, len(data), (batch,))
        x0 = to_sample(data[idx])  # [B, F*3, H, W]
        cond = ids[idx].clone()
        cond[torch.rand(batch) < cond_dropout] = (
            empty  # classifier-free guidance needs an unconditional model
        )
        noise = torch.randn_like(x0)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (batch,))
        noisy = noise_sched.add_noise(x0, noise, t)
        pred = pipe.denoise(noisy, t, pipe.text_encoder(cond).last_hidden_state)
        loss = F.mse_loss(pred, x0)  # the scheduler predicts the clean sample
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(modules.parameters(), 1.0)
        for group in opt.param_groups:  # linear warm-up keeps the first steps of a tiny model stable
            group["lr"] = lr * min(1.0, (step + 1) / 200)
        opt.step()
        ema.step(modules.parameters())
        if (step + 1) % 50 == 0:
            log(
                json.dumps(
                    {
                        "step": step + 1,
                        "loss": round(loss.item(), 4),
                        "s_per_step": round((time.time() - t0) / (step + 1 - start), 3),
                    }
                )
            )
        if (step + 1) % save_every == 0 or step + 1 == steps:
            _save(pipe, modules, ema, opt, step + 1, out_dir)
    return pipe


def _save(pipe, modules, ema, opt, step: int, out_dir: Path) -> None:
    """Write the EMA weights as the pipeline and the raw training state for resuming."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {
        "model": modules.state_dict(),
        "opt": opt.state_dict(),
        "ema": ema.state_dict(),
        "rng": torch.get_rng_state(),
        "step": step,
    }
    torch.save(state, out_dir / "train_state.tmp")
    (out_dir / "train_state.tmp").replace(out_dir / "train_state.pt")
    ema.store(modules.parameters())
    ema.copy_to(modules.parameters())
    pipe.save_pretrained(out_dir / "pipeline")
    ema.restore(modules.parameters())
