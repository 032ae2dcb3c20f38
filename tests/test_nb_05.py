"""Notebook 05 on the smoke profile (run once for the whole chain by the smoke_run fixture)."""

import json
import math

import pytest

from vpolib.checkpoints import load_optimizer
from vpolib.config import load_config
from vpolib.examples import PAIR_FILES, PAIR_SETS
from vpolib.io import read_jsonl

pytestmark = pytest.mark.notebook


def test_05_dpo(smoke_stage):
    run_dir, stage, m = smoke_stage("05_dpo")
    dpo = load_config("smoke").dpo
    assert m["beta"] == dpo.trainer["beta"]
    pairs, _ = read_jsonl(run_dir / "04_feedback" / "pairs.jsonl")
    merged = json.loads((run_dir / "04_feedback" / "metrics.json").read_text())["merge"]
    assert m["pairs"]["records"] == len(pairs)
    assert m["pairs"]["by_source"] == {s: merged[s]["kept"] for s in ("text", "video") if merged[s]["kept"]}
    # VPO trains on the merged pairs; an ablation on all pairs of its kind (04 writes each kind apart)
    sources = {
        name: read_jsonl(run_dir / "04_feedback" / PAIR_FILES[name])[0]
        for name in m["variants"]
        if (run_dir / "04_feedback" / PAIR_FILES[name]).exists()
    }
    trained = set(m["variants"]) | set(m["skipped_variants"])
    assert trained == {dpo.pairs, *dpo.ablations} and dpo.pairs in m["variants"]
    for name, v in m["variants"].items():
        usable = sum(p.get("source") in PAIR_SETS[name] for p in sources[name])
        n_eval = max(1, round(usable * dpo.eval_fraction))  # vpolib.examples.split
        assert (v["train_pairs"], v["eval_pairs"], v["skipped_pairs"]) == (usable - n_eval, n_eval, 0)
        assert v["steps"] == dpo.trainer["max_steps"] == 3
        assert all(math.isfinite(x) for x in v["loss"])
        assert v["loss"][0] == pytest.approx(math.log(2), abs=1e-3)  # policy == reference at step 1
        assert "nan_loss" not in v["failure_signs"]
        saved = stage / ("model" if name == dpo.pairs else f"model_{name}")
        # LoRA: the adapter only (it reloads on 03's model); full DPO: a plain model dir
        assert (saved / ("adapter_config.json" if dpo.use_lora else "config.json")).exists()
        assert not (dpo.use_lora and (saved / "model.safetensors").exists())
    rows, errors = read_jsonl(stage / "heldout_prompts.jsonl")
    assert not errors and len(rows) == dpo.n_heldout and all(r["method"] == "vpo" for r in rows)
    sft_ids = [r["id"] for r in read_jsonl(run_dir / "03_sft" / "heldout_prompts.jsonl")[0]]
    assert [r["id"] for r in rows] == sft_ids[: len(rows)]  # the same queries as the SFT model's
    assert {"sft", "vpo"} <= set(m["judge_pass_rates"])
    model, _ = load_optimizer(stage / "model")
    assert model.config.model_type == "llama"
