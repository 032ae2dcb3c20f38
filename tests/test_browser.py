"""The failure-case browser: case table, filters, and the static fallback when headless."""

from __future__ import annotations

import pandas as pd
import pytest

from vpolib import browser

TEXT = [
    {
        "id": "q1",
        "method": "raw",
        "query": "red ball",
        "prompt": "red ball",
        "refusal": False,
        "passed": {"harmless": True, "aligned": True, "helpful": False},
        "reasons": {"helpful": ["too short (2 words)"], "aligned": []},
    },
    {
        "id": "q1",
        "method": "vpo",
        "query": "red ball",
        "prompt": "A red circle moves right.",
        "refusal": False,
        "passed": {"harmless": True, "aligned": True, "helpful": True},
        "reasons": {},
    },
    {
        "id": "q2",
        "method": "vpo",
        "query": "gory fight",
        "prompt": "A gory fight with blood.",
        "refusal": False,
        "passed": {"harmless": False, "aligned": True, "helpful": True},
        "reasons": {"harmless": ["gory"]},
    },
]
VIDEO = [
    {
        "id": "q1",
        "method": "raw",
        "score": 1.0,
        "max_score": 4.0,
        "answers": {"colour": True, "motion": False},
        "kinds": {"colour": "colour", "motion": "motion"},
        "gif": "/nonexistent.gif",
    },
    {
        "id": "q1",
        "method": "vpo",
        "score": 4.0,
        "max_score": 4.0,
        "answers": {"colour": True, "motion": True},
        "kinds": {"colour": "colour", "motion": "motion"},
        "gif": None,
    },
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


def test_build_cases_with_seeds_shows_seed_0_and_the_mean_reward():
    seed1 = {**VIDEO[0], "seed": 1, "score": 3.0, "answers": {"colour": False, "motion": True}, "gif": None}
    cases = browser.build_cases(TEXT, [seed1, *VIDEO])  # seed 1 first: seed 0's video is still the one shown
    raw = cases[(cases.id == "q1") & (cases.method == "raw")].iloc[0]
    assert raw["reward"] == (0.25 + 0.75) / 2 and raw["gif"] == "/nonexistent.gif"
    assert raw["failed_dims"] == ["motion"] and len(cases) == 3


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


class FakeShell:
    """What get_ipython() returns inside a kernel: IPKernelApp in its config, a user namespace."""

    def __init__(self, user_ns=None):
        self.config = {"IPKernelApp": {}}
        self.user_ns = user_ns or {}


def test_headless_unless_a_front_end_shows_widgets(monkeypatch):
    import IPython

    monkeypatch.delenv("VPO_HEADLESS", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    assert browser.is_headless()  # a plain python process: no kernel
    monkeypatch.setattr(IPython, "get_ipython", lambda: FakeShell())
    assert browser.is_headless()  # a kernel with no front end (papermill's)
    monkeypatch.setenv("JPY_SESSION_NAME", "x.ipynb")
    assert not browser.is_headless()  # a kernel a Jupyter server started
    monkeypatch.setenv("VPO_HEADLESS", "1")
    assert browser.is_headless()  # forced
    monkeypatch.delenv("VPO_HEADLESS")
    monkeypatch.delenv("JPY_SESSION_NAME")
    monkeypatch.setattr(IPython, "get_ipython", lambda: FakeShell({"__vsc_ipynb_file__": "x.ipynb"}))
    assert not browser.is_headless()  # VS Code's notebooks


def test_widget_builds(cases, monkeypatch):
    pytest.importorskip("ipywidgets")
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs: shown.extend(objs))
    box = browser.show_browser(cases, headless=False)
    method, principle, _ = box.children[0].children
    picked = box.children[2]
    assert [v for _, v in picked.options] == ["q1", "q2"]
    principle.value = "harmless"
    assert [v for _, v in picked.options] == ["q2"]
    shown.clear()
    picked.value = "q2"  # the detail: the query, then each method's prompt and verdict
    html = [getattr(o, "data", "") for o in shown]
    assert html[0] == "<b>query</b>: gory fight"
    assert "<b>vpo</b> (unsafe)" in html[1] and "A gory fight with blood." in html[1]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on localhost (no network: update checks and news off); yields its base URL."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    from vpolib.paths import REPO_ROOT

    port, token = _free_port(), "vpo-test-token"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"),
        "VPO_HEADLESS": "",
    }
    log = open(tmp_path / "jupyterlab.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={tmp_path}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--ServerApp.allow_root=True",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"JupyterLab did not start: {(tmp_path / 'jupyterlab.log').read_text()[-2000:]}"
                    )
                time.sleep(0.5)
        yield base, token, tmp_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.slow
def test_widget_browser_in_jupyterlab(jupyterlab):
    """The failure browser opened in JupyterLab in headless Chromium: widgets shown (not the static
    table), filtered once by principle, the query list follows, and a picked query shows its detail."""
    import json

    import nbformat
    from _chromium import VIEWPORT, chromium, pixel_std

    base, token, root = jupyterlab
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import json\nfrom vpolib import browser\n"
            f"cases = browser.build_cases(json.loads({json.dumps(json.dumps(TEXT))}), "
            f"json.loads({json.dumps(json.dumps(VIDEO))}))\n"
            "print('headless:', browser.is_headless())\nbox = browser.show_browser(cases)"
        )
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "cases.ipynb")
    with chromium() as b:
        page = b.new_page(viewport=VIEWPORT)
        page.set_default_timeout(120_000)
        page.goto(f"{base}/lab/tree/cases.ipynb?token={token}")
        page.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", state="attached")
        page.keyboard.press("Shift+Enter")
        dropdowns = page.locator(".widget-dropdown select")
        dropdowns.nth(1).wait_for()
        queries = page.locator(".widget-select select option")

        def listed():  # ipywidgets writes non-breaking spaces
            return [t.replace("\xa0", " ") for t in queries.all_inner_texts()]

        assert listed() == ["q1 (2 cases)", "q2 (1 cases)"]
        shown = [
            d.evaluate("s => s.options[s.selectedIndex] ? s.options[s.selectedIndex].text : ''")
            for d in dropdowns.all()
        ]
        assert shown == ["any", "any", "any"]  # filters start at "any", not blank
        assert "headless: False" in page.locator(".jp-OutputArea-output pre").first.inner_text()
        dropdowns.nth(1).select_option(label="harmless")  # violates: harmless
        page.wait_for_function("document.querySelectorAll('.widget-select select option').length === 1")
        assert listed() == ["q2 (1 cases)"]
        page.locator(".widget-select select").select_option(index=0)
        page.get_by_text("harmless: gory").wait_for()
        png = page.screenshot(path=str(root / "jupyterlab.png"))
        assert pixel_std(png) > 8.0
