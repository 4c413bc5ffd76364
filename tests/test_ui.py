"""The studio in a real browser (Debian's Chromium via Playwright): fill a timeline, run, watch, download.

Never runs `playwright install`: it uses /usr/bin/chromium and skips cleanly when that is absent.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import av
import pytest

CHROMIUM = os.environ.get("GENL_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")



@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1300, "height": 1600}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(server.url)
        page.get_by_role("tab", name="Text → video").wait_for()
        yield page
        context.close()
        browser.close()


def set_cell(page, row: int, col: int, value) -> None:
    """Edit a cell of the (first visible) timeline table: double-click, type, Enter."""
    cell = page.locator(f'[data-testid="cell-{row}-{col}"]').first
    cell.dblclick()
    editor = cell.locator("textarea, input").first
    editor.fill(str(value))
    editor.press("Enter")
    page.wait_for_timeout(150)


def set_number(page, label: str, value) -> None:
    box = page.get_by_label(label, exact=True).first
    box.fill(str(value))
    box.press("Tab")


def expect_error(page, pattern: str) -> None:
    """A visible error toast whose text matches `pattern`; then dismiss the toasts."""
    toast = page.locator(".toast-body").filter(has_text=re.compile(pattern, re.I)).first
    toast.wait_for(state="visible", timeout=20_000)
    for close in page.locator(".toast-close").all():
        if close.is_visible():
            close.click()


def fill_text_form(page, server) -> None:
    """Two timeline rows in frames and a tiny, fast job in the Advanced accordion (idempotent)."""
    page.get_by_role("tab", name="Text → video").click()
    page.get_by_label("frames", exact=True).first.check()
    set_cell(page, 0, 0, 0)
    set_cell(page, 0, 1, 7)
    set_cell(page, 0, 2, "a red circle moving left")
    set_cell(page, 1, 0, 8)
    set_cell(page, 1, 1, 15)
    set_cell(page, 1, 2, "a blue square moving right")
    if not page.get_by_label("Length (frames)", exact=True).first.is_visible():
        page.get_by_text("Advanced", exact=True).first.click()
    for label, value in [("Length (frames)", 16), ("Width", 32), ("Height", 32), ("Clip length M (frames)", 8),
                         ("Stride S (frames)", 4)]:
        set_number(page, label, value)
    set_number(page, "number input for Steps", 3)
    model = page.get_by_label("Model", exact=True).first
    model.fill(server.models["animatediff"])
    model.press("Enter")
    page.wait_for_function("() => document.querySelector('.genl-strip').textContent.includes('3 windows')")


def test_text_to_video_in_the_browser(server, page, tmp_path):
    fill_text_form(page, server)
    strip = page.locator(".genl-strip").first
    assert "a blue square moving right" in strip.inner_text()
    assert page.locator(".genl-estimate").first.inner_text().startswith("Estimate")

    page.get_by_role("button", name="Generate").click()
    page.locator(".genl-preview img").first.wait_for(state="visible")  # the live preview updated
    video = page.locator(".genl-result video").first
    video.wait_for(state="visible", timeout=120_000)
    assert page.locator('.genl-status[data-status="done"]').first.is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui_text_to_video.png"), full_page=True)

    link = page.locator('.genl-files a[download="video.mp4"]').first
    with page.expect_download() as info:
        link.click()
    saved = tmp_path / "download.mp4"
    info.value.save_as(saved)
    with av.open(str(saved)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 16

    # the same job in the Jobs tab: newest first; selecting it shows its status, video and settings
    job_id = page.get_by_label("Job id", exact=True).first.input_value()
    page.get_by_role("tab", name="Jobs").click()
    first = page.locator('.genl-jobs [data-testid="cell-0-0"]').first
    page.wait_for_function(f"() => document.querySelector('.genl-jobs').textContent.includes('{job_id}')")
    first.click()
    page.locator('.genl-job-status [data-status="done"]').first.wait_for()
    page.locator(".genl-job-video video").first.wait_for(state="visible")
    page.screenshot(path=str(ARTIFACTS / "ui_jobs.png"), full_page=True)


def test_bad_inputs_show_errors(server, page, tmp_path):
    fill_text_form(page, server)
    generate = page.get_by_role("button", name="Generate")
    # a gap in the timeline: shown live under the strip, and as an error on Generate
    set_cell(page, 1, 0, 10)
    page.locator(".genl-strip .genl-error").filter(has_text="no prompt").first.wait_for()
    generate.click()
    expect_error(page, "gap")
    set_cell(page, 1, 0, 8)
    # an empty prompt
    set_cell(page, 0, 2, " ")
    generate.click()
    expect_error(page, "empty")
    set_cell(page, 0, 2, "a red circle")
    # a negative length, then one above the server's limit (--max-frames 64)
    set_number(page, "Length (frames)", -4)
    generate.click()
    expect_error(page, "at least 1 frame")
    set_number(page, "Length (frames)", 100)
    generate.click()
    expect_error(page, "limit of 64 frames")
    set_number(page, "Length (frames)", 16)

    # uploads that are not videos, in the Edit tab
    page.get_by_role("tab", name="Edit a video").click()
    not_video = tmp_path / "notes.txt"
    not_video.write_text("not a video")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    upload = page.locator('.genl-upload input[type="file"]').first
    upload.set_input_files(str(not_video))
    page.locator(".genl-video-info").filter(has_text="Cannot use this file").first.wait_for()
    assert "not a video" in page.locator(".genl-video-info").first.inner_text()
    page.get_by_role("button", name="Edit video").click()
    expect_error(page, "not a video")
    page.locator('.genl-upload button[aria-label="Clear"]').first.click()
    upload.set_input_files(str(empty))
    page.locator(".genl-video-info").filter(has_text="empty").first.wait_for()
    page.get_by_role("button", name="Edit video").click()
    expect_error(page, "file is empty")

    # the server is still fine
    page.get_by_role("tab", name="Settings / About").click()
    page.get_by_text("Workers:").first.wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui_after_bad_inputs.png"), full_page=True)
