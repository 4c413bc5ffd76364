"""Shared Playwright setup for the browser tests: Debian's Chromium (never `playwright install`), headless, and
one page per module on a running studio. Importing it skips the test module cleanly when Chromium or
Playwright is missing."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("GENL_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


@contextlib.contextmanager
def open_page(url: str, *, width: int = 1300, height: int = 1600, timeout_ms: int = 60_000,
              ready_tab: str = "Text → video", **context_options):
    """A page on `url` once the tab named `ready_tab` is there; closed (with its browser) afterwards."""
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": width, "height": height}, **context_options)
        page = context.new_page()
        page.set_default_timeout(timeout_ms)
        page.goto(url)
        page.get_by_role("tab", name=ready_tab).wait_for()
        try:
            yield page
        finally:
            context.close()
            browser.close()
