"""A deterministic numpy renderer: scene dict -> uint8 clip [F, H, W, 3] (saved by vpolib.video.save_video)."""

from __future__ import annotations

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
