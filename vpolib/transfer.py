"""Stage 06, transfer to a second video model: every method's prompts on ShapesWorld model B.

VPO's optimizer learns from model A's feedback; the paper's generalization row asks whether it also helps a
model it never saw (CogVideoX -> Open-Sora 1.2 there; model A -> model B here, see
:mod:`vpolib.shapesworld.model_b`). The same held-out prompts are rendered by both models from the same
per-query noise and scored by the same checklist of the original query.
"""

from __future__ import annotations

import pandas as pd

from vpolib.analysis import mean_ci, video_table


def model_backend(cfg, model_dir: str):
    """A ShapesWorld backend over ``model_dir`` with the profile's sampling settings."""
    from vpolib.video import ShapesWorldBackend

    sw = cfg.shapesworld
    return ShapesWorldBackend(model_dir, sw.num_inference_steps, sw.guidance_scale)


def by_model(frames: dict[str, pd.DataFrame], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """:func:`vpolib.analysis.video_table` of each model's frame, stacked with a ``model`` column."""
    tables = [video_table(f, n_boot, seed).assign(model=m) for m, f in frames.items() if len(f)]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


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
