"""Notebook 08's comparison table (vpolib/paradigms.py), worked out by hand on two queries."""

import pandas as pd
import pytest

from vpolib.paradigms import budget_row, comparison


def test_gain_per_video_carries_the_paired_gain_ci():
    # Two queries; best of 4 gains 0.1 on each, so every bootstrap resample's mean gain is 0.1.
    frame = pd.DataFrame(
        [
            {"id": "q1", "method": "sft", "reward": 0.4},
            {"id": "q2", "method": "sft", "reward": 0.6},
            {"id": "q1", "method": "sft-best4", "reward": 0.5},
            {"id": "q2", "method": "sft-best4", "reward": 0.7},
        ]
    )
    budgets = [budget_row("sft-best4", videos=8, tokens=80, steps=0, seconds=2.0, when="inference")]
    table = comparison(frame, budgets, n_boot=200).set_index("paradigm")
    best = table.loc["sft-best4"]
    assert best["gain"] == pytest.approx(0.1)
    assert (best["gain_lo"], best["gain_hi"]) == pytest.approx((0.1, 0.1))
    assert best["gain_per_1k_videos"] == pytest.approx(12.5)  # 0.1 gained / 8 videos * 1,000
    assert (best["gain_per_1k_lo"], best["gain_per_1k_hi"]) == pytest.approx((12.5, 12.5))
    assert best["win_rate"] == pytest.approx(1.0)
    sft = table.loc["sft"]  # the baseline: no gain, no videos
    assert pd.isna(sft["gain_per_1k_videos"]) and pd.isna(sft["gain"])
