"""Notebook 03 on the smoke profile (run once for the whole chain by the smoke_run fixture)."""

import json
import math

import pytest

from vpolib.checkpoints import load_optimizer
from vpolib.config import load_config
from vpolib.generation import generate_prompts
from vpolib.io import read_jsonl

pytestmark = pytest.mark.notebook


def test_03_sft(smoke_stage):
    run_dir, stage, m = smoke_stage("03_sft")
    sft = load_config("smoke").sft
    assert m["base_model"] == sft.base_model and m["lora"] == sft.use_lora
    assert m["steps"] == sft.trainer["max_steps"] == 8
    n_sft = json.loads((run_dir / "02_refine" / "metrics.json").read_text())["n_sft"]
    n_eval = max(1, round(n_sft * sft.eval_fraction))  # vpolib.examples.split: at least one eval example
    assert m["examples"] == {
        "records": n_sft,
        "malformed_lines": 0,
        "skipped": 0,
        "train": n_sft - n_eval,
        "eval": n_eval,
    }
    assert m["parameters"] == m["trainable_parameters"] == 557_696  # tiny-llama, full fine-tune
    assert all(math.isfinite(x) for x in m["train_loss"])
    assert m["timing_s"]["per_step"] > 0
    # held-out prompts: the contract notebook 06 reads
    rows, errors = read_jsonl(stage / "heldout_prompts.jsonl")
    assert not errors and len(rows) == m["heldout"]["prompts"] == sft.n_heldout
    assert all(r["method"] == "sft" and r["query"] and isinstance(r["prompt"], str) for r in rows)
    heldout_ids = {r["id"] for r in read_jsonl(run_dir / "01_data" / "splits" / "heldout.jsonl")[0]}
    assert {r["id"] for r in rows} <= heldout_ids
    assert {"shapes"} < {r["source"] for r in rows}  # real and ShapesWorld queries both prompted
    assert set(m["judge_pass_rates"]) == {"harmless", "aligned", "helpful", "all"}
    assert all(0 <= v <= 1 for v in m["judge_pass_rates"].values())
    # the saved model is what notebooks 04 and 05 load
    model, tok = load_optimizer(stage / "model")
    assert len(generate_prompts(model, tok, ["a red car"], n=2, max_new_tokens=4)[0]) == 2
