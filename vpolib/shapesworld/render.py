"""A deterministic numpy renderer: scene dict -> uint8 clip [F, H, W, 3], plus GIF/mp4 export."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vpolib.shapesworld.world import BACKGROUNDS, COLOURS, SIZES, centres

RES = 16  # frame height and width (pixels)
FRAMES = 8
SUPERSAMPLE = 4  # anti-aliasing: coverage is averaged over SUPERSAMPLE x SUPERSAMPLE sub-pixels


def shape_mask(shape: str, cx: float, cy: float, r: float, res: int = RES) -> np.ndarray:
    """Coverage in [0, 1] of one shape centred at (cx, cy) with radius r (all in pixels). [H, W]"""
    n = res * SUPERSAMPLE
    coords = (np.arange(n) + 0.5) / SUPERSAMPLE
    x, y = coords[None, :] - cx, coords[:, None] - cy
    if shape == "circle":
        inside = x**2 + y**2 <= r**2
    elif shape == "square":  # half-side 0.85 r: a square visibly smaller than its circle's bounding box
        inside = (np.abs(x) <= 0.85 * r) & (np.abs(y) <= 0.85 * r)
    elif shape == "triangle":  # apex up, base 2r wide at cy + r
        inside = (y <= r) & (np.abs(x) <= (y + r) / 2)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return inside.reshape(res, SUPERSAMPLE, res, SUPERSAMPLE).mean(axis=(1, 3))


def render(scene: dict, res: int = RES, frames: int = FRAMES) -> np.ndarray:
    """Draw a scene as a clip. [F, H, W, 3] uint8"""
    bg = np.array(BACKGROUNDS[scene["background"]], dtype=np.float32)
    video = np.broadcast_to(bg, (frames, res, res, 3)).copy()  # [F, H, W, 3]
    for obj in scene["objects"]:
        colour = np.array(COLOURS[obj["colour"]], dtype=np.float32)
        r = SIZES[obj["size"]] * res
        for f, (cx, cy) in enumerate(centres(obj, frames)):
            cover = shape_mask(obj["shape"], cx * res, cy * res, r, res)[..., None]  # [H, W, 1]
            video[f] = video[f] * (1 - cover) + colour * cover
    return np.clip(np.rint(video), 0, 255).astype(np.uint8)


def _upscale(video: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling so tiny clips are visible in notebooks. [F, H*s, W*s, 3]"""
    return video.repeat(scale, axis=1).repeat(scale, axis=2)


def save_gif(video: np.ndarray, path: str | Path, scale: int = 8, fps: int = 4) -> Path:
    """Write a clip [F, H, W, 3] uint8 as a looping GIF (upscaled for viewing)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(frame) for frame in _upscale(video, scale)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=1000 // fps, loop=0)
    return path


def save_mp4(video: np.ndarray, path: str | Path, scale: int = 8, fps: int = 4) -> Path:
    """Write a clip [F, H, W, 3] uint8 as H.264 mp4 with diffusers' export_to_video."""
    from diffusers.utils import export_to_video

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [frame.astype(np.float32) / 255 for frame in _upscale(video, scale)]
    export_to_video(frames, str(path), fps=fps)
    return path
