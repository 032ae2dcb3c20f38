"""Notebook 07 (beyond the paper) on the smoke profile: model B, the test-time loop, the diagnostics and the probe,
on notebook 06's prompts and videos."""

import json
import re

import pytest

pytestmark = pytest.mark.notebook


def test_07_beyond(smoke_stage):
    run_dir, stage, m = smoke_stage("07_beyond")
    beyond = json.loads((stage / "beyond.json").read_text())
    assert_beyond(beyond)
    assert m["parts"] == ["diagnostics", "model_b", "probe", "testtime"] and m["n_video_queries"] == 3
    assert set(m["seconds"]) == {"model_b", "testtime", "probe"}
    # the same frame as notebook 06's: model A's rewards in beyond.json are 06's video rewards
    results = json.loads((run_dir / "06_evaluate" / "results.json").read_text())
    on_a = {r["method"]: r["reward"] for r in beyond["model_b"]["overall"] if r["model"] == "A"}
    assert on_a == pytest.approx({r["method"]: r["reward"] for r in results["video"]["overall"]})
    html = (stage / "report.html").read_text()
    assert all(src.startswith("data:") for src in re.findall(r'src="([^"]*)"', html))
    assert "Gallery" not in html and "At a glance" in html  # 06's headline, no gallery of its own


def assert_beyond(beyond):
    """Issue 12's section: model B, the test-time loop (smoke: 2 rounds, sft and vpo) and the diagnostics."""
    assert {"model_b", "testtime", "diagnostics", "probe", "seconds"} <= set(beyond)
    overall = beyond["model_b"]["overall"]
    assert {r["model"] for r in overall} == {"A", "B"} and all(0.0 <= r["reward"] <= 1.0 for r in overall)
    assert {(r["model"], r["baseline"]) for r in beyond["model_b"]["gains"]} >= {("A", "sft"), ("B", "sft")}
    rounds = beyond["testtime"]["rounds"]
    assert {(r["method"], r["round"]) for r in rounds} == {(m, k) for m in ("sft", "vpo") for k in (1, 2)}
    for method in ("sft", "vpo"):  # best-so-far never falls; cost grows by at most one video a round
        by_round = sorted((r for r in rounds if r["method"] == method), key=lambda r: r["round"])
        assert by_round[0]["best_reward"] <= by_round[1]["best_reward"] + 1e-9
        assert by_round[0]["videos"] == 1.0 and 1.0 <= by_round[1]["videos"] <= 2.0
    assert all(r["best_lo"] <= r["best_reward"] <= r["best_hi"] for r in rounds)
    assert {(r["model"], r["row"]) for r in beyond["probe"]} >= {
        (m, k) for m in "AB" for k in ("right", "irrelevant", "empty")
    }
    diag = beyond["diagnostics"]
    assert {r["method"] for r in diag["length_reward"]} >= {"raw", "sft", "vpo"}
    assert {r["target"] for r in diag["length_drift"]} >= {"vpo"} and diag["dimension_delta"]
