"""Notebook 01 on the smoke profile (run once for the whole chain by the smoke_run fixture)."""

import pytest

from vpolib.io import read_jsonl

pytestmark = pytest.mark.notebook


def test_01_data(smoke_stage):
    run_dir, stage, m = smoke_stage("01_data")
    assert m["read"] == {"sft": 400, "dpo": 400}  # the smoke profile's data.limit
    steps = m["filter_steps"]
    assert steps[0]["remaining"] == 800
    assert all(
        a["remaining"] - b["removed"] == b["remaining"] for a, b in zip(steps, steps[1:], strict=False)
    )
    assert m["kept"] == steps[-1]["remaining"] == 800  # the smoke queries are all distinct and non-empty
    # the smoke profile's split: 50 real held-out (from the DPO pool), ShapesWorld 24 / 16 / 8
    assert m["splits"] == {
        "sft_pool": {"real": 400, "shapes": 24},
        "dpo_pool": {"real": 350, "shapes": 16},
        "heldout": {"real": 50, "shapes": 8},
        "vbench_pairs": {"real": 946 + 800, "shapes": 0},
    }
    splits = {
        name: read_jsonl(stage / "splits" / f"{name}.jsonl")[0]
        for name in ("sft_pool", "dpo_pool", "heldout", "vbench_pairs")
    }
    assert m["splits"]["heldout"]["real"] == 50
    real = {name: [r for r in rows if r.get("source") != "shapes"] for name, rows in splits.items()}
    assert len(real["heldout"]) == 50
    assert len(real["sft_pool"]) + len(real["dpo_pool"]) + len(real["heldout"]) == m["kept"]
    ids = [{r["id"] for r in real[n]} for n in ("sft_pool", "dpo_pool", "heldout")]
    assert not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    shapes = [r for r in splits["heldout"] if r["source"] == "shapes"]
    assert len(shapes) == 8 and all(r["caption"] and r["scene"] for r in shapes)
    assert len(splits["vbench_pairs"]) == 946 + 800
    assert all(a["dropped"] == 0 for a in m["vbench_alignment"])
    assert (stage / "figures" / "lengths.png").stat().st_size > 0
