"""The failure-case browser: case table, filters, and the static fallback when headless."""

from __future__ import annotations

import pandas as pd
import pytest

from vpolib import browser

TEXT = [
    {"id": "q1", "method": "raw", "query": "red ball", "prompt": "red ball", "refusal": False,
     "passed": {"harmless": True, "aligned": True, "helpful": False},
     "reasons": {"helpful": ["too short (2 words)"], "aligned": []}},
    {"id": "q1", "method": "vpo", "query": "red ball", "prompt": "A red circle moves right.", "refusal": False,
     "passed": {"harmless": True, "aligned": True, "helpful": True}, "reasons": {}},
    {"id": "q2", "method": "vpo", "query": "gory fight", "prompt": "A gory fight with blood.", "refusal": False,
     "passed": {"harmless": False, "aligned": True, "helpful": True}, "reasons": {"harmless": ["gory"]}},
]
VIDEO = [
    {"id": "q1", "method": "raw", "score": 1.0, "max_score": 4.0, "answers": {"colour": True, "motion": False},
     "kinds": {"colour": "colour", "motion": "motion"}, "gif": "/nonexistent.gif"},
    {"id": "q1", "method": "vpo", "score": 4.0, "max_score": 4.0, "answers": {"colour": True, "motion": True},
     "kinds": {"colour": "colour", "motion": "motion"}, "gif": None},
]


@pytest.fixture
def cases():
    return browser.build_cases(TEXT, VIDEO)


def test_build_cases(cases):
    assert len(cases) == 3
    raw = cases[(cases.id == "q1") & (cases.method == "raw")].iloc[0]
    assert raw["outcome"] == "imprecise" and raw["violated"] == ["helpful"]
    assert raw["reasons"] == "helpful: too short (2 words)"
    assert raw["reward"] == 0.25 and raw["failed_dims"] == ["motion"]
    q2 = cases[cases.id == "q2"].iloc[0]
    assert q2["outcome"] == "unsafe" and q2["failed_dims"] == [] and pd.isna(q2["reward"])


def test_filters(cases):
    assert browser.filter_cases(cases, method="vpo")["id"].tolist() == ["q1", "q2"]
    assert browser.filter_cases(cases, principle="harmless")["id"].tolist() == ["q2"]
    assert browser.filter_cases(cases, dimension="motion")["method"].tolist() == ["raw"]
    assert browser.filter_cases(cases, score_range=(0.5, 1.0))["method"].tolist() == ["vpo"]
    assert browser.filter_cases(cases, method="raw", principle="harmless").empty
    assert len(browser.filter_cases(cases)) == 3


def test_headless_static_table(cases, monkeypatch):
    monkeypatch.setenv("VPO_HEADLESS", "1")
    assert browser.is_headless()
    shown = browser.show_browser(cases)
    assert isinstance(shown, pd.DataFrame)
    # only failures: q1/raw (helpful + motion) and q2/vpo (unsafe); q1/vpo passes everything
    assert sorted(zip(shown.id, shown.method, strict=True)) == [("q1", "raw"), ("q2", "vpo")]
    assert "gif" not in shown.columns


def test_headless_outside_a_kernel(monkeypatch):
    monkeypatch.delenv("VPO_HEADLESS", raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", "x.ipynb")
    assert browser.is_headless()  # plain python process (pytest): no kernel, no widgets


def test_widget_builds(cases):
    pytest.importorskip("ipywidgets")
    box = browser.show_browser(cases, headless=False)
    method, principle, _ = box.children[0].children
    picked = box.children[2]
    assert [v for _, v in picked.options] == ["q1", "q2"]
    principle.value = "harmless"
    assert [v for _, v in picked.options] == ["q2"]
    picked.value = "q2"  # renders the detail without error
