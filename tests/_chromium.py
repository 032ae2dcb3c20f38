"""Headless Chromium for the browser tests: the system's Debian ``chromium`` driven by Playwright.

Nothing is downloaded: Playwright's own browser builds are never used (``executable_path``). Tests skip,
saying why, only when Playwright or the chromium binary is missing (``make install`` installs both).
"""

from __future__ import annotations

import io
import os
import shutil
from contextlib import contextmanager

import pytest

VIEWPORT = {"width": 1280, "height": 900}


def chromium_path() -> str | None:
    """$VPO_CHROMIUM, else the Debian binary, else whatever ``chromium`` is on PATH."""
    for cand in (
        os.environ.get("VPO_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


@contextmanager
def chromium():
    """A headless system Chromium (Playwright browser); skips the test when it cannot start."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install -e '.[test]')")
    exe = chromium_path()
    if exe is None:
        pytest.skip("no chromium binary (apt-get install -y chromium; `make install` does it as root)")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=exe,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            yield browser
        finally:
            browser.close()


def pixel_std(png: bytes) -> float:
    """Standard deviation of the screenshot's grey levels: about 0 for a blank page."""
    import numpy as np
    from PIL import Image

    return float(np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float).std())


def layout(page) -> dict:
    """Measured in the browser: the page's scroll width and height, the viewport width, and the widest
    image's right edge (document coordinates)."""
    return page.evaluate("""() => ({
        scrollWidth: document.documentElement.scrollWidth,
        scrollHeight: document.documentElement.scrollHeight,
        innerWidth: window.innerWidth,
        imgRight: Math.max(0, ...[...document.images].map(i => i.getBoundingClientRect().right + scrollX)),
        images: document.images.length,
        brokenImages: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length,
    })""")
