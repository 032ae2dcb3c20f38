import json

import pytest
import torch

from vpolib import precision
from vpolib.config import ConfigError, load_config
from vpolib.results import precision_summary
from vpolib.run import start_stage

AVX2 = {"model": "Intel Core i7-8700", "flags": ["fma", "avx", "f16c", "avx2"], "capability": "AVX2",
        "mkldnn_bf16": False, "cores": 2, "torch": "2.x"}  # fmt: skip
BF16 = {"model": "AMD EPYC", "flags": ["fma", "avx", "avx2", "avx512f", "avx512bw", "avx512_bf16"],
        "capability": "AVX512", "mkldnn_bf16": True, "cores": 2, "torch": "2.x"}  # fmt: skip
AUTO_FIELDS = ("refine.teacher_dtype", "sft.dtype", "dpo.dtype", "grpo.dtype", "analysis.fewshot_dtype")


def _timing(speedup: float) -> dict:
    return {"float32_s": 0.016, "bfloat16_s": 0.016 / speedup, "bf16_speedup": speedup}


def _field(cfg, dotted: str):
    section, key = dotted.split(".")
    return getattr(getattr(cfg, section), key)


@pytest.fixture(autouse=True)
def _fresh_probe(monkeypatch):
    """Each test sees no $VPO_DTYPE unless it sets one, and no in-process probe result of another test."""
    monkeypatch.delenv(precision.ENV, raising=False)
    precision._cpu_precision.cache_clear()
    yield
    precision._cpu_precision.cache_clear()


def test_bf16_only_where_the_cpu_computes_it_natively_and_faster():
    assert precision.choose_dtype(AVX2, None) == "float32"
    assert precision.choose_dtype(AVX2, _timing(1.6)) == "float32"  # emulated: the flags decide first
    skylake = {**AVX2, "flags": [*AVX2["flags"], "avx512f", "avx512bw"], "mkldnn_bf16": True}
    assert precision.choose_dtype(skylake, _timing(1.1)) == "float32"  # oneDNN emulates bf16 on plain AVX-512
    assert precision.choose_dtype(BF16, _timing(1.6)) == "bfloat16"
    assert precision.choose_dtype(BF16, _timing(0.4)) == "float32"  # native but measured slower
    assert precision.choose_dtype({**BF16, "mkldnn_bf16": False}, _timing(1.6)) == "float32"
    amx = {**BF16, "flags": ["avx2", "avx512f", "amx_tile", "amx_bf16"]}
    assert precision.choose_dtype(amx, None) == "bfloat16"


@pytest.mark.parametrize(("forced", "bf16"), [("float32", False), ("bfloat16", True)])
def test_vpo_dtype_forces_every_auto_field(monkeypatch, forced, bf16):
    monkeypatch.setenv(precision.ENV, forced)
    cfg = load_config("cpu")
    assert {f: _field(cfg, f) for f in AUTO_FIELDS} == dict.fromkeys(AUTO_FIELDS, forced)
    assert all(getattr(cfg, s).trainer["bf16"] is bf16 for s in ("sft", "dpo", "grpo"))
    assert cfg.video.dtype == "float32"  # not auto in the profile: left alone
    assert cfg.precision["dtype"] == forced and cfg.precision["source"] == "env"
    assert cfg.precision["resolved"] == {**dict.fromkeys(AUTO_FIELDS, forced), "sft.trainer.bf16": bf16,
                                         "dpo.trainer.bf16": bf16, "grpo.trainer.bf16": bf16}  # fmt: skip
    monkeypatch.setenv(precision.ENV, "fp16")
    with pytest.raises(ValueError, match="VPO_DTYPE must be one of"):
        load_config("cpu")


def test_explicit_profile_values_win_over_auto(monkeypatch):
    monkeypatch.setenv(precision.ENV, "bfloat16")
    cfg = load_config("cpu", {"sft.dtype": "float32", "sft.trainer.bf16": False})
    assert cfg.sft.dtype == "float32" and cfg.sft.trainer["bf16"] is False
    assert cfg.dpo.dtype == "bfloat16" and cfg.dpo.trainer["bf16"] is True  # still auto
    assert (
        "sft.dtype" not in cfg.precision["resolved"] and "sft.trainer.bf16" not in cfg.precision["resolved"]
    )
    full = load_config("full")  # the GPU profile's explicit bf16 stays
    assert full.sft.dtype == "bfloat16" and full.sft.trainer["bf16"] is True


def test_a_profile_cannot_set_the_measured_record():
    with pytest.raises(ConfigError, match="precision is measured"):
        load_config("smoke", {"precision": {"dtype": "bfloat16"}})


def test_the_cpu_record_is_cached_on_disk_and_read_back(monkeypatch, tmp_path):
    monkeypatch.setattr(precision, "cpu_info", lambda: BF16)
    monkeypatch.setattr(precision, "matmul_timing", lambda: _timing(1.6))
    first = precision.machine_precision("cpu", tmp_path)
    assert first["source"] == "measured" and first["dtype"] == "bfloat16"
    (path,) = tmp_path.glob("precision-*.json")
    assert json.loads(path.read_text()) == {"cpu": BF16, "timing": _timing(1.6), "dtype": "bfloat16"}
    # Another process (a fresh in-process cache) reads the file and measures nothing
    path.write_text(json.dumps({"cpu": BF16, "timing": _timing(0.4), "dtype": "float32"}))
    precision._cpu_precision.cache_clear()
    monkeypatch.setattr(precision, "matmul_timing", lambda: pytest.fail("measured again despite the cache"))
    again = precision.machine_precision("cpu", tmp_path)
    assert again["source"] == "cache" and again["dtype"] == "float32" and again["timing"] == _timing(0.4)
    # Another torch version (or CPU) is another file: measured again
    precision._cpu_precision.cache_clear()
    monkeypatch.setattr(precision, "cpu_info", lambda: {**BF16, "torch": "3.x"})
    monkeypatch.setattr(precision, "matmul_timing", lambda: _timing(0.4))
    assert precision.machine_precision("cpu", tmp_path)["source"] == "measured"
    assert len(list(tmp_path.glob("precision-*.json"))) == 2
    # The same CPU with torch held to AVX2 kernels (ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2): measured again
    precision._cpu_precision.cache_clear()
    monkeypatch.setattr(precision, "cpu_info", lambda: {**BF16, "capability": "AVX2", "mkldnn_bf16": False})
    assert precision.machine_precision("cpu", tmp_path)["dtype"] == "float32"
    assert len(list(tmp_path.glob("precision-*.json"))) == 3


def test_this_machine_is_probed_and_timed(tmp_path):
    info = precision.cpu_info()
    assert info["cores"] >= 1 and info["capability"] == torch.backends.cpu.get_cpu_capability()
    assert all(any(k in f for k in ("avx", "amx", "fma", "f16c")) for f in info["flags"])
    record = precision.machine_precision("cpu", tmp_path)
    assert record["dtype"] == precision.choose_dtype(record["cpu"], record["timing"])
    t = record["timing"]
    assert t["float32_s"] > 0 and t["bfloat16_s"] > 0
    assert t["bf16_speedup"] == pytest.approx(t["float32_s"] / t["bfloat16_s"])


def test_the_manifest_and_results_record_the_precision(monkeypatch, tmp_path):
    monkeypatch.setenv(precision.ENV, "float32")
    torch_threads = torch.get_num_threads()
    try:
        start_stage("03_sft", "smoke", str(tmp_path))
    finally:
        torch.set_num_threads(torch_threads)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert (
        manifest["precision"]["dtype"] == "float32"
        and manifest["precision"]["resolved"]["sft.dtype"] == "float32"
    )
    stage = manifest["stages"]["03_sft"]
    assert stage["dtype"] == "float32" and stage["torch_threads"] >= 1 and "pythonhashseed" in stage
    summary = precision_summary(manifest["precision"])
    assert summary["dtype"] == "float32" and summary["source"] == "env"
    assert (
        summary["cpu"] == manifest["precision"]["cpu"]["model"]
        and summary["resolved"]["dpo.trainer.bf16"] is False
    )
    assert precision_summary(None) is None  # a run from before the record
