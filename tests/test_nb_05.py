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
    tracks = json.loads((run_dir / "04_feedback" / "metrics.json").read_text())["tracks"]
    assert m["pairs"]["records"] == len(pairs)
    assert m["pairs"]["by_source"] == {s: tracks[s]["pairs"] for s in ("text", "video") if tracks[s]["pairs"]}
    # rounds: 0 is the SFT model; round 1 trains on 04's pairs, round 2 on its own samples from round 1's model
    rounds = m["rounds"]
    assert [r["round"] for r in rounds] == list(range(dpo.rounds + 1)) and dpo.rounds == 2
    assert [r["model"] for r in rounds] == ["sft", "model_r1", "model"]
    assert rounds[1]["collected"] is None and rounds[2]["collected"]["round"] == 2
    second = rounds[2]["collected"]
    fb = load_config("smoke").feedback
    assert second["videos_rendered"] == fb.n_queries * fb.samples_per_query * fb.reward_seeds
    assert (
        second["tokens_generated"] > 0
        and second["pairs"] == second["text"]["pairs"] + second["video"]["pairs"]
    )
    round2, _ = read_jsonl(stage / "round2" / "pairs.jsonl")
    assert len(round2) == second["pairs"] and {p["round"] for p in round2} == {2}
    assert all(0 <= r["dev_reward"] <= 1 for r in rounds) and all(
        0 <= r["dev_changed"] <= 1 for r in rounds[1:]
    )
    # the real dev queries, judged every round (none of them a query 04 samples)
    assert m["n_dev_text"] == load_config("smoke").dpo.n_dev_text
    assert all(0 <= r["dev_text_pass"] <= 1 for r in rounds)
    r2_info = json.loads((stage / "model" / "train_info.json").read_text())
    assert r2_info["start"]["adapters"][-1] == "../model_r1"  # round 2 starts from round 1
    weights = m["loss_weights"]
    # VPO trains on the round's pairs; an ablation on one of 04's pair files
    sources = {
        name: read_jsonl(run_dir / "04_feedback" / PAIR_FILES[name])[0]
        for name in m["variants"]
        if (run_dir / "04_feedback" / PAIR_FILES[name]).exists()
    }
    trained = set(m["variants"]) | set(m["skipped_variants"])
    assert trained == {dpo.pairs, *dpo.ablations} and dpo.pairs in m["variants"]
    for name, v in m["variants"].items():
        records = round2 if name == dpo.pairs else sources[name]
        usable = sum(p.get("source") in PAIR_SETS[name] for p in records) - v["skipped_pairs"]
        n_eval = max(1, round(usable * dpo.eval_fraction))  # vpolib.examples.split
        assert (v["train_pairs"], v["eval_pairs"]) == (min(usable - n_eval, dpo.max_pairs), n_eval)
        assert v["steps"] == dpo.trainer["max_steps"] == 3
        assert all(math.isfinite(x) for x in v["loss"])
        # policy == reference at step 1: the DPO term is ln 2, the NLL term (RPO) is positive
        assert v["loss"][0] >= weights["sigmoid"] * math.log(2) - 1e-3
        assert v["loss"][0] == pytest.approx(math.log(2), abs=1e-3) or weights.get("sft", 0) > 0
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
