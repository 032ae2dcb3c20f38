"""Profiles as files: YAML with ``extends``, dotted-key overrides, and typed dataclasses built from them with clear
errors (an unknown key names the closest valid one, or where it moved; a wrong type names the field).

:mod:`vpolib.config` declares the workbook's sections and checks them against TRL and PEFT; this module knows nothing
of what the sections mean.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import typing
from pathlib import Path
from typing import Any

import yaml

from vpolib.paths import CONFIG_DIR


class ConfigError(ValueError):
    """A profile or override names a key that does not exist, or has the wrong type."""


# Keys that moved to a shared section: an old profile or override is told where each went.
MOVED = {
    **{f"refine.{k}": f"judge.{k}" for k in ("structured", "use_models", "harm_threshold", "min_coverage")},
    **{f"refine.{k}": f"judge.{k}" for k in ("min_similarity", "min_words", "max_words")},
    "refine.judge": "judge.kind",
    "refine.judge_backend": "judge.backend",
    "refine.teacher_rates": "shapesworld.teacher_rates",
    "analysis.structured": "judge.structured",
    **{f"feedback.{k}": f"video.{k}" for k in ("backend", "cogvideox_model", "cogvideox_call", "dtype")},
    **{f"feedback.{k}": f"video.{k}" for k in ("reward", "reward_model")},
    "feedback.vae_tiling": "video.vae_tiling",
}


def _closest(key: str, names, where: str) -> str:
    moved = MOVED.get(f"{where}.{key}")
    if moved:
        return f" (moved to {moved})"
    close = difflib.get_close_matches(key, list(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_keys(values: dict, names, where: str, valid: str) -> None:
    """Reject keys not in ``names``, naming each with the closest valid one (or where it moved)."""
    unknown = sorted(set(values) - set(names))
    if unknown:
        said = ", ".join(f"{k!r}{_closest(k, names, where)}" for k in unknown)
        raise ConfigError(f"unknown key(s) {said} in {where or 'top level'}; valid: {valid}")


def build_dataclass(cls, values: dict, where: str):
    """Construct dataclass ``cls`` from ``values``, rejecting unknown keys with a clear message."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    check_keys(values, names, where, str(sorted(names)))
    kwargs = {}
    for key, value in values.items():
        hint = hints[key]
        path = f"{where}.{key}" if where else key
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{path} must be a mapping, got {value!r}")
            value = build_dataclass(hint, value, path)
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
    out = copy.deepcopy(raw)
    for dotted, value in (overrides or {}).items():
        node = out
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {dotted!r}: {part!r} is not a section")
        node[leaf] = (
            _merge(node[leaf], value)
            if isinstance(value, dict) and isinstance(node.get(leaf), dict)
            else value
        )
    return out
