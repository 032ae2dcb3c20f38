"""report.html rendered by headless Chromium (the system's Debian package): not blank, not overflowing,
headline before the details. The checks are shown to fail on a blank and on an overflowing page."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from _chromium import VIEWPORT, chromium, layout, pixel_std  # noqa: E402
from test_report import results_fixture  # noqa: E402

from vpolib.views import report  # noqa: E402

MIN_STD = 8.0  # grey-level std of a page with text and figures; a blank page is ~0


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def check_page(browser, url: str, shot=None) -> dict:
    """Open ``url`` at 1280x900; return the layout measured in the page and the screenshot's pixel std."""
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(url, wait_until="load")
        png = page.screenshot(full_page=True, path=shot)
        return {
            **layout(page),
            "std": pixel_std(png),
            "headline_before_tables": page.evaluate("""() => {
                    const h = document.querySelector('.headline'), t = document.querySelector('table');
                    return !!h && (!t || h.getBoundingClientRect().top < t.getBoundingClientRect().top);}"""),
        }
    finally:
        page.close()


def assert_readable(m: dict):
    assert m["std"] > MIN_STD, f"screenshot looks blank (pixel std {m['std']:.1f})"
    assert m["scrollWidth"] <= m["innerWidth"], f"page overflows: {m['scrollWidth']} > {m['innerWidth']} px"
    assert m["imgRight"] <= m["innerWidth"], "a figure is cut off on the right"
    assert m["brokenImages"] == 0 and m["headline_before_tables"]


def _wide_synthetic_report(tmp_path):
    """Many methods, a 16-inch figure (as notebook 06's text-outcome figure), long and empty tables."""
    results = results_fixture()
    methods = [r["method"] for r in results["video"]["overall"]]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax in axes:
        ax.bar(methods, range(len(methods)))
    questions = pd.DataFrame(
        [
            {"method": m, "question": f"question_{i}", "pass_rate": 0.5, "lo": 0.1, "hi": 0.9, "n": 3}
            for m in methods
            for i in range(20)
        ]
    )
    tables = {
        "Text outcomes (%)": pd.DataFrame(results["text"]["all"]),
        "Per-question pass rates": questions,
        "Harmful subset": pd.DataFrame(),
    }
    path = report.write_report(
        tmp_path / "report.html",
        "Synthetic run",
        {"profile": "test", "n": {"a": 1}},
        tables,
        {"Text outcomes": fig},
        [],
        ["a note"],
        results=results,
    )
    plt.close(fig)
    return path


def test_report_renders_in_chromium(browser, tmp_path):
    path = _wide_synthetic_report(tmp_path)
    m = check_page(browser, path.as_uri(), tmp_path / "report.png")
    assert_readable(m)
    assert m["images"] == 2  # the headline figure and the wide notebook figure, both scaled to fit


def test_checks_catch_blank_and_overflowing_pages(browser, tmp_path):
    blank = tmp_path / "blank.html"
    blank.write_text("<html><body></body></html>")
    assert check_page(browser, blank.as_uri())["std"] < MIN_STD
    wide = tmp_path / "wide.html"
    wide.write_text(
        "<html><body><div class='headline'>x</div><div style='width:3000px'>wide</div></body></html>"
    )
    assert check_page(browser, wide.as_uri())["scrollWidth"] > VIEWPORT["width"]


@pytest.mark.notebook
def test_smoke_run_report_renders_in_chromium(browser, smoke_stage, tmp_path):
    """The real report of the smoke chain (notebook 06's call), checked as a reader would see it."""
    _, stage, _ = smoke_stage("06_evaluate")
    m = check_page(browser, (stage / "report.html").as_uri(), tmp_path / "smoke-report.png")
    assert_readable(m)
    html = (stage / "report.html").read_text()
    assert "At a glance" in html and "running</td>" not in html
