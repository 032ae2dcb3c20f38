"""Stage 07, transfer to a second video model: every method's prompts on ShapesWorld model B.

VPO's optimizer learns from model A's feedback; the paper's generalization row asks whether it also helps a
model it never saw (CogVideoX -> Open-Sora 1.2 there; model A -> model B here, see
:mod:`vpolib.shapesworld.model_b`). The same held-out prompts are rendered by both models from the same
per-query noise and scored by the same checklist of the original query.
"""

from __future__ import annotations

import pandas as pd

from vpolib import evaluate
from vpolib.analysis import (
    mean_ci,
    paired_win_rates,
    per_model,
    question_frame,
    records,
    video_frame,
    video_table,
)
from vpolib.video import ShapesWorldBackend


def model_backend(cfg, model_dir: str):
    """A ShapesWorld backend over ``model_dir`` with the profile's sampling settings."""
    sw = cfg.shapesworld
    return ShapesWorldBackend(model_dir, sw.num_inference_steps, sw.guidance_scale)


def by_model(frames: dict[str, pd.DataFrame], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """:func:`vpolib.analysis.video_table` of each model's frame, stacked with a ``model`` column."""
    return per_model(video_table, frames, n_boot, seed)


def paired_gain(
    frame: pd.DataFrame, target: str, base: str, value: str = "reward", n_boot: int = 1000, seed: int = 0
) -> dict:
    """Mean of ``target - base`` over the queries both have, with a CI over queries: ``{"mean", "lo", "hi",
    "n"}`` (NaNs with n = 0 when a method is missing)."""
    wide = frame.pivot_table(index="id", columns="method", values=value, aggfunc="mean")
    if target not in wide or base not in wide:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    both = wide[[target, base]].dropna()
    return mean_ci(both[target] - both[base], n_boot, seed)


def gains_table(
    frames: dict[str, pd.DataFrame],
    target: str = "vpo",
    bases: list[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per model and baseline: the paired reward gain of ``target`` (default baselines: every other method)."""
    rows = []
    for model, frame in frames.items():
        if not len(frame):
            continue
        methods = list(dict.fromkeys(frame["method"]))
        for base in bases if bases is not None else [m for m in methods if m != target]:
            g = paired_gain(frame, target, base, "reward", n_boot, seed)
            rows.append(
                {
                    "model": model,
                    "target": target,
                    "baseline": base,
                    "gain": g["mean"],
                    "lo": g["lo"],
                    "hi": g["hi"],
                    "n": g["n"],
                }
            )
    return pd.DataFrame(rows, columns=["model", "target", "baseline", "gain", "lo", "hi", "n"])


def run_model_b(cfg, shapes, prompts, frame_a, path, media_dir, seed_of, n_boot: int = 1000, seed: int = 0):
    """Render and score every method's ShapesWorld prompts on model B (``cfg.beyond.model_b_dir``) from the same
    noises as on A (``analysis.eval_seeds`` of them), resumable via ``path``. Returns ``{"frame", "qframe",
    "by_model", "gains", "summary"}``: B's per-query (mean over seeds) and per-question frames, the reward per
    model, ``target``'s gain per model and baseline, and the results.json part (counts, rows)."""
    acfg, model_dir = cfg.analysis, cfg.beyond.model_b_dir
    backend = model_backend(cfg, model_dir)
    found, counts = evaluate.score_videos(
        backend, shapes, prompts, path, media_dir, seed_of, acfg.video_batch, acfg.eval_seeds
    )
    found = evaluate.keep(found, prompts, acfg.eval_seeds)
    frames = {"A": frame_a, "B": video_frame(found)}
    table, gains = by_model(frames, n_boot, seed), gains_table(frames, acfg.target, None, n_boot, seed)
    wins = paired_win_rates(frames["B"], "reward", acfg.target, n_boot, seed)
    summary = {"dir": model_dir, "counts": counts, "overall": records(table), "gains": records(gains),
               "win_rates": records(wins)}  # fmt: skip
    return {"backend": backend, "frame": frames["B"], "qframe": question_frame(found), "by_model": table,
            "gains": gains, "summary": summary}  # fmt: skip
