"""Profiles (configs/<name>.yaml) -> typed dataclasses, with dotted-key overrides.

A profile may start with ``extends: <other profile>``; its keys are merged over the other's.
Each stage owns one section (``data``, ``shapesworld``, ``refine``, ...).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vpolib.paths import CONFIG_DIR


@dataclass
class DataConfig:
    """Stage 01: loading, cleaning, tagging and splitting the real queries."""

    root: str = "../shared/data"  # relative to the repo root; $VPO_DATA_DIR wins
    vpo_sft: str = "vpo/sft_prompts.json"
    vpo_dpo: str = "vpo/dpo_prompts.json"
    vbench_dir: str = "vbench"
    limit: int | None = None  # cap on queries read per source (smoke size)
    max_query_chars: int = 600  # longer queries are flagged 'too_long' (kept)
    min_query_chars: int = 3  # shorter ones (after removing tags) are dropped
    drop_non_english: bool = False  # non-English queries are flagged; dropped only if True
    drop_too_long: bool = False
    heldout_size: int = 500  # real queries held out for evaluation (never trained on)
    heldout_from: str = "dpo"  # which pool the held-out set is carved from


@dataclass
class ShapesWorldConfig:
    """ShapesWorld: the laptop-scale text-to-video world (issue 5)."""

    model_dir: str = "vpolib/assets/shapesworld"  # trained pipeline, relative to the repo root
    num_inference_steps: int = 20
    guidance_scale: float = 3.0
    n_queries: int = 200  # ShapesWorld queries added to the pools


@dataclass
class RefineConfig:
    """Stage 02: teacher prompts, judge, refinement (issue 6)."""

    teacher: str = "vbench+local"
    judge: str = "rule"
    n_queries: int = 200
    extra: dict = field(default_factory=dict)


@dataclass
class SFTStageConfig:
    """Stage 03: supervised fine-tuning of the optimizer (issue 7)."""

    base_model: str = "tiny-llama"
    use_lora: bool = True
    trainer: dict = field(default_factory=dict)  # passed to trl.SFTConfig


@dataclass
class FeedbackConfig:
    """Stage 04: video-level feedback and preference pairs (issue 3)."""

    backend: str = "shapesworld"
    samples_per_query: int = 4
    temperature: float = 0.9
    top_p: float = 0.9
    n_queries: int = 64
    margin: float = 0.5
    max_pairs_per_query: int = 1
    text_pairs_first: bool = True


@dataclass
class DPOStageConfig:
    """Stage 05: DPO of the optimizer (issue 7)."""

    pairs: str = "both"  # both | text | video (the paper's ablation)
    trainer: dict = field(default_factory=dict)  # passed to trl.DPOConfig


@dataclass
class AnalysisConfig:
    """Stage 06: evaluation, figures, failure-case browser and report (issue 4)."""

    n_bootstrap: int = 1000
    n_eval: int = 200


@dataclass
class Config:
    profile: str = "cpu"
    seed: int = 42
    device: str = "cpu"
    data: DataConfig = field(default_factory=DataConfig)
    shapesworld: ShapesWorldConfig = field(default_factory=ShapesWorldConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    sft: SFTStageConfig = field(default_factory=SFTStageConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    dpo: DPOStageConfig = field(default_factory=DPOStageConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class ConfigError(ValueError):
    """A profile or override names a key that does not exist, or has the wrong type."""


def _build(cls, values: dict, where: str):
    """Construct dataclass ``cls`` from ``values``, rejecting unknown keys with a clear message."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)} in {where or 'top level'}; valid: {sorted(names)}")
    kwargs = {}
    for key, value in values.items():
        hint = hints[key]
        path = f"{where}.{key}" if where else key
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{path} must be a mapping, got {value!r}")
            value = _build(hint, value, path)
        else:
            value = _check_type(value, hint, path)
        kwargs[key] = value
    return cls(**kwargs)


def _check_type(value: Any, hint: Any, path: str) -> Any:
    allowed = typing.get_args(hint) or (hint,)
    if value is None and type(None) in allowed:
        return value
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    bases = tuple(typing.get_origin(a) or a for a in allowed if a is not type(None))
    if not isinstance(value, bases) or (isinstance(value, bool) and bool not in bases):
        raise ConfigError(f"{path} must be {hint}, got {value!r}")
    return value


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def read_profile(name: str, config_dir: Path = CONFIG_DIR) -> dict:
    """The raw mapping of a profile, with ``extends`` resolved."""
    path = Path(config_dir) / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in Path(config_dir).glob("*.yaml"))
        raise ConfigError(f"no profile {name!r} in {config_dir}; known: {known}")
    raw = yaml.safe_load(path.read_text()) or {}
    parent = raw.pop("extends", None)
    if parent:
        raw = _merge(read_profile(parent, config_dir), raw)
    raw["profile"] = name
    return raw


def apply_overrides(raw: dict, overrides: dict | None) -> dict:
    """Apply ``{"data.heldout_size": 50, ...}`` (dotted keys) to a raw profile mapping."""
    out = _merge(raw, {})
    for dotted, value in (overrides or {}).items():
        node = out
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {dotted!r}: {part!r} is not a section")
        node[leaf] = _merge(node[leaf], value) if isinstance(value, dict) and isinstance(node.get(leaf), dict) else value
    return out


def load_config(profile: str = "cpu", overrides: dict | None = None, config_dir: Path = CONFIG_DIR) -> Config:
    """Load a profile, apply overrides, and validate it into a :class:`Config`."""
    raw = apply_overrides(read_profile(profile, config_dir), overrides)
    return _build(Config, raw, "")
