"""Notebook 08 (paradigms) on the smoke profile: every row, budgets counted in the same units, 06's rows read back
unchanged, the eval noise apart from the noise rows selected or trained on."""

import json

import pytest

from vpolib.evaluate import eval_seed
from vpolib.io import read_jsonl
from vpolib.paradigms import select_seed

pytestmark = pytest.mark.notebook
ROWS = ["sft", "sft-best2", "sft-best4", "vpo-paper", "vpo", "grpo", "testtime", "caption"]


def test_08_paradigms(smoke_stage):
    run_dir, stage, m = smoke_stage("08_paradigms")
    result = json.loads((stage / "paradigms.json").read_text())
    rows = {r["paradigm"]: r for r in result["rows"]}
    n = result["n_queries"]
    assert m["paradigms"] == ROWS and list(rows) == ROWS and n == m["n_queries"] > 0
    assert all(r["n"] == n and r["reward_lo"] <= r["reward"] <= r["reward_hi"] for r in rows.values())
    # 06's rows are 06's records, read back: the same rewards
    results = json.loads((run_dir / "06_evaluate" / "results.json").read_text())
    on06 = {r["method"]: r["reward"] for r in results["video"]["overall"]}
    assert all(rows[p]["reward"] == pytest.approx(on06[p]) for p in ("sft", "vpo", "vpo-paper", "caption"))
    # budgets in the same units: best of k renders k videos per query; GRPO 2 steps x 4 completions x 1 seed
    assert [rows[f"sft-best{k}"]["videos"] for k in (2, 4)] == [2 * n, 4 * n]
    assert (rows["grpo"]["videos"], rows["grpo"]["steps"]) == (2 * 4 * 1, 2) and rows["grpo"]["tokens"] > 0
    m04 = json.loads((run_dir / "04_feedback" / "metrics.json").read_text())
    assert rows["vpo-paper"]["videos"] == m04["n_videos"] < rows["vpo"]["videos"]  # round 2 rendered anew
    assert (
        n <= rows["testtime"]["videos"] <= 2 * n
    )  # round 1 renders every query; round 2 those not yet passed
    assert rows["sft"]["videos"] == rows["caption"]["videos"] == 0 and rows["sft"]["win_rate"] is None
    assert {h["paradigm"] for h in result["hacking"]} == set(ROWS)


def test_08_rows_are_scored_on_noise_no_row_selected_on(smoke_stage):
    run_dir, stage, _ = smoke_stage("08_paradigms")
    seed = json.loads((run_dir / "manifest.json").read_text())["seed"]
    evaluated = read_jsonl(stage / "paradigms_eval.jsonl")[0]
    assert evaluated and all(r["noise_seed"] == eval_seed(seed, r["id"], r["seed"]) for r in evaluated)
    chosen = {select_seed(seed, r["id"], r["j"]) for r in read_jsonl(stage / "best_of_n.jsonl")[0]}
    assert chosen and not chosen & {r["noise_seed"] for r in evaluated}
