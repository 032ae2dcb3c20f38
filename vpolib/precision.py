"""Which numeric type this machine computes fast: the profile's ``auto`` dtypes resolve here.

On a CPU with avx512_bf16, bf16 generated 2.2x and trained a LoRA step 1.5x faster than fp32; on an AVX2-only
CPU torch emulates bf16, up to 25x slower. So ``auto`` is measured, not assumed: the CPU's flags and a short
matmul timing decide (:func:`choose_dtype`), once per CPU, torch version and kernel limit (cached in
``.cache/precision-<hash>.json``). ``$VPO_DTYPE`` (float32 | bfloat16) forces the answer, e.g. to compare both
on one machine.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import time
from pathlib import Path

import torch

from vpolib.io import read_json, write_json
from vpolib.paths import REPO_ROOT

CACHE_DIR = REPO_ROOT / ".cache"  # git-ignored, beside the built models (vpolib.models.CACHE_DIR)
ENV = "VPO_DTYPE"
DTYPES = ("float32", "bfloat16")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # bf16 dot products in hardware (else oneDNN emulates them)
# Profile fields naming a weights' dtype, and the trainer sections whose ``bf16`` (TRL autocast) follows it.
DTYPE_FIELDS = (
    "refine.teacher_dtype",
    "sft.dtype",
    "dpo.dtype",
    "grpo.dtype",
    "analysis.fewshot_dtype",
    "video.dtype",
)
TRAINER_SECTIONS = ("sft", "dpo", "grpo")


def cpu_info() -> dict:
    """The CPU's model name, vector flags (avx*, amx*, fma, f16c), torch's view of it, the usable cores."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []

    def first(key: str) -> str:
        return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(key)), "")

    flags = [f for f in first("flags").split() if any(k in f for k in ("avx", "amx", "fma", "f16c"))]
    try:
        mkldnn_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a private op: absent from some builds
        mkldnn_bf16 = None
    return {
        "model": first("model name") or platform.processor(),
        "flags": flags,
        "capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn_bf16": mkldnn_bf16,
        "cores": len(os.sched_getaffinity(0)),
        "torch": str(torch.__version__),  # a str subclass yaml.safe_dump refuses
    }


PROBE_N = 512  # the matmul probe's size: one n x n by n x n product, 2 n^3 floating-point operations


def matmul_timing(n: int = PROBE_N, reps: int = 3) -> dict:
    """Seconds of one n x n CPU matmul in float32 and bfloat16 (best of ``reps``, after a warm-up)."""
    out = {}
    for name in DTYPES:
        a, b = (torch.rand(n, n, dtype=getattr(torch, name)) for _ in range(2))
        a @ b  # warm-up: first-call allocation and kernel selection
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - start)
        out[f"{name}_s"] = min(times)
    return {**out, "bf16_speedup": out["float32_s"] / out["bfloat16_s"]}


def choose_dtype(info: dict, timing: dict | None) -> str:
    """``"bfloat16"`` only where the CPU computes it natively and it is not slower; else ``"float32"``.

    Native: the flags name avx512_bf16 or amx_bf16 and torch's oneDNN has bf16 kernels (``mkldnn_bf16`` not
    False). Not slower: the measured bf16 matmul speedup over fp32 is >= 1.0 (not checked when ``timing`` is
    None). oneDNN also reports bf16 on plain AVX-512, where it emulates it, hence the flags.
    """
    native = (
        any(f in info.get("flags", []) for f in NATIVE_BF16_FLAGS) and info.get("mkldnn_bf16") is not False
    )
    fast = timing is None or timing["bf16_speedup"] >= 1.0
    return "bfloat16" if native and fast else "float32"


def _cache_key(info: dict) -> str:
    """Per CPU and torch version, and per the kernels torch may use on it: ``ATEN_CPU_CAPABILITY`` and
    ``ONEDNN_MAX_CPU_ISA`` change ``capability`` and ``mkldnn_bf16`` on the same CPU (and its bf16 speed)."""
    parts = [info["model"], info["flags"], info["torch"], info.get("capability"), info.get("mkldnn_bf16")]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


@functools.cache
def _cpu_precision(cache_dir: Path) -> dict:
    """The CPU's record, measured once per CPU and torch version (then read from the cache file)."""
    info = cpu_info()
    path = cache_dir / f"precision-{_cache_key(info)}.json"
    if path.exists():
        cached = read_json(path)
        return {"cpu": info, "timing": cached["timing"], "dtype": cached["dtype"], "source": "cache"}
    timing = matmul_timing()
    record = {"cpu": info, "timing": timing, "dtype": choose_dtype(info, timing)}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, record)
    return {**record, "source": "measured"}


def machine_precision(device: str = "cpu", cache_dir: str | os.PathLike | None = None) -> dict:
    """``{"cpu", "timing", "dtype", "source"}`` for ``device``: the CPU's measured choice, or on CUDA bf16
    where the GPU supports it (no timing). ``$VPO_DTYPE`` wins (source "env")."""
    if device.startswith("cuda"):
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        record = {
            "cpu": cpu_info(),
            "timing": None,
            "dtype": "bfloat16" if bf16 else "float32",
            "source": "cuda",
        }
    else:
        record = dict(_cpu_precision(Path(cache_dir or CACHE_DIR)))
    forced = os.environ.get(ENV)
    if forced:
        if forced not in DTYPES:
            raise ValueError(f"${ENV} must be one of {DTYPES}, got {forced!r}")
        record.update(dtype=forced, source="env")
    return record


def resolve_dtypes(cfg, cache_dir: str | os.PathLike | None = None) -> dict:
    """Replace each ``auto`` dtype of ``cfg`` (and ``auto`` trainer ``bf16``) by this machine's choice.

    Explicit values in the profile are kept. Returns the record for the manifest: the choice, the CPU, the
    timing, and ``resolved`` (each field that said auto -> what it became)."""
    record = machine_precision(cfg.device, cache_dir)
    resolved = {}
    for dotted in DTYPE_FIELDS:
        section, key = dotted.split(".")
        if getattr(getattr(cfg, section), key) == "auto":
            setattr(getattr(cfg, section), key, record["dtype"])
            resolved[dotted] = record["dtype"]
    for section in TRAINER_SECTIONS:
        stage = getattr(cfg, section)
        if stage.trainer.get("bf16") == "auto":
            resolved[f"{section}.trainer.bf16"] = record["dtype"] == "bfloat16"
            stage.trainer = {**stage.trainer, "bf16": resolved[f"{section}.trainer.bf16"]}
    return {**record, "resolved": resolved}
