"""Saved optimizers: a model dir (full weights) or a LoRA adapter dir that records the chain it reloads on.

``train_info.json`` beside the weights holds the fingerprint of the inputs it was trained from, so a rerun
with the same inputs reuses it; an adapter dir reloads on its base with every earlier adapter merged in.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from vpolib.io import write_json
from vpolib.models import load_causal_lm, load_tokenizer

TRAIN_INFO = "train_info.json"
ADAPTER_CONFIG = "adapter_config.json"  # PEFT writes it beside the adapter weights


def fingerprint(*parts) -> str:
    """A short hash of JSON-able inputs (config section, data): a saved model is reused only if it matches."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def dir_size(path: str | os.PathLike) -> int:
    """Bytes of every file under ``path`` (links not followed; 0 if it does not exist)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def is_adapter_dir(path: str | os.PathLike) -> bool:
    """True for a dir holding a PEFT adapter (not a full model)."""
    return (Path(path) / ADAPTER_CONFIG).exists()


def model_spec(base: str | os.PathLike) -> str:
    """A model spec as recorded in train_info: local dirs absolute, names ("tiny-llama", hub ids) as given."""
    return str(Path(base).resolve()) if Path(base).exists() else str(base)


def adapter_chain(path: str | os.PathLike) -> tuple[str, list[Path]]:
    """``(base spec, adapter dirs in the order they are merged)`` of a saved optimizer dir.

    A full model dir is its own base with no adapters. An adapter dir records the chain it was trained
    on in train_info.json (``start``: base spec + earlier adapters, relative to the dir so a moved run
    dir still loads); without that record, PEFT's ``base_model_name_or_path`` is the base.
    """
    path = Path(path)
    if not is_adapter_dir(path):
        return str(path), []
    info_file = path / TRAIN_INFO
    start = json.loads(info_file.read_text()).get("start") if info_file.exists() else None
    if not start:
        return json.loads((path / ADAPTER_CONFIG).read_text())["base_model_name_or_path"], [path]
    base = start["base"]
    if (
        start.get("base_rel") and (path / start["base_rel"]).exists()
    ):  # a moved run dir: its own copy of the base
        base = str((path / start["base_rel"]).resolve())
    return base, [(path / a).resolve() for a in start["adapters"]] + [path]


def chain_record(base: str, adapters: list[Path], out_dir: Path) -> dict:
    """train_info's ``start``: the base spec (and, for a local dir, its path relative to ``out_dir`` too,
    so a run dir moved with its SFT model inside still loads) and the earlier adapters, relative."""
    out_dir = out_dir.resolve()
    rel = os.path.relpath(base, out_dir) if Path(base).is_dir() else None
    return {"base": base, "base_rel": rel, "adapters": [os.path.relpath(a, out_dir) for a in adapters]}


def load_merged(path: str | os.PathLike, device: str | None = None, dtype: str | None = None):
    """``(model, tokenizer)``: the base of ``path``'s chain with every adapter merged in, in memory."""
    base, adapters = adapter_chain(path)
    model, _ = load_causal_lm(base, device=device, dtype=dtype)
    if adapters:
        from peft import PeftModel

        for adapter in adapters:  # merge one at a time: each was trained on the merge of the ones before
            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return model, load_tokenizer(str(path))


def save_optimizer(model, tokenizer, path: str | os.PathLike, info: dict | None = None) -> Path:
    """Save a model dir loadable by :func:`load_optimizer`: a PeftModel as its adapter only (MBs, not
    the base's GBs), any other model in full.

    ``info`` (fingerprint, start chain, log history, timings) goes to ``train_info.json`` beside it,
    last, so a run killed while saving leaves no info and is retrained.
    """
    path = Path(path)
    model.save_pretrained(path)  # PeftModel.save_pretrained writes adapter_config.json + adapter weights
    tokenizer.save_pretrained(path)
    if info is not None:
        write_json(path / TRAIN_INFO, info)
    return path


def train_info(path: str | os.PathLike, expected_fingerprint: str) -> dict | None:
    """The saved ``info`` of a model dir if it was trained with ``expected_fingerprint`` (else None)."""
    file = Path(path) / TRAIN_INFO
    if not file.exists():
        return None
    info = json.loads(file.read_text())
    return info if info.get("fingerprint") == expected_fingerprint else None


def load_optimizer(path: str | os.PathLike, device: str | None = None, dtype: str | None = None):
    """``(model, tokenizer)`` from a dir written by :func:`train_and_save` / :func:`save_optimizer`, in
    eval mode; an adapter dir is loaded on its recorded chain and merged in memory."""
    model, tokenizer = load_merged(path, device=device, dtype=dtype)
    return model.eval(), tokenizer


def export_merged(path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """A plain model dir from an adapter dir (its chain merged), for an engine that needs one (``vllm serve``
    of a LoRA-on-LoRA model); a full model dir needs no export."""
    model, tokenizer = load_merged(path)
    return save_optimizer(model, tokenizer, out)


def optimizer_dir(run_dir: Path, method: str) -> Path:
    """Where a trained optimizer's model lives: sft -> 03_sft/model, vpo -> 05_dpo/model, vpo-<pairs> ->
    05_dpo/model_<pairs> (the ablations of notebook 05)."""
    run_dir = Path(run_dir)
    if method == "sft":
        return run_dir / "03_sft" / "model"
    if method == "vpo":
        return run_dir / "05_dpo" / "model"
    if method.startswith("vpo-"):
        return run_dir / "05_dpo" / f"model_{method[4:]}"
    raise ValueError(f"no trained optimizer for method {method!r} (sft, vpo or vpo-<pairs>)")
