"""The studio in a real browser (Debian's Chromium via Playwright): fill a timeline, run, watch, download.

Never runs `playwright install`: it uses /usr/bin/chromium and skips cleanly when that is absent.
"""
from __future__ import annotations

import re
from pathlib import Path

import av
import pytest

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
ROOT = Path(__file__).resolve().parent.parent

from browser import open_page, sync_api  # noqa: E402  (skips this module without Chromium / Playwright)



@pytest.fixture(scope="module")
def page(server):
    with open_page(server.url, accept_downloads=True) as page:
        yield page


def set_cell(page, row: int, col: int, value) -> None:
    """Edit a cell of the (first visible) timeline table: double-click, type, Enter; again if the table was
    re-rendered by a server update in between (the edit is then lost), until the cell shows the value."""
    cell = page.locator(f'[data-testid="cell-{row}-{col}"]').first
    for _ in range(4):
        cell.dblclick()
        editor = cell.locator("textarea, input").first
        editor.fill(str(value))
        editor.press("Enter")
        try:
            page.wait_for_function("([row, col, value]) => {"
                                   " const c = document.querySelector(`[data-testid=\"cell-${row}-${col}\"]`);"
                                   " return c && c.innerText.replace(/\u22ee/g, '').trim() === value.trim(); }",
                                   arg=[row, col, str(value)],
                                   timeout=3000)
            page.wait_for_timeout(300)  # let the estimate round trip settle before the next edit
            if first_line(cell) == str(value).strip():
                return
        except sync_api.TimeoutError:
            pass
    raise AssertionError(f"Timeline cell ({row}, {col}) did not take the value {value!r}.")


def first_line(cell) -> str:
    """A cell's value, without the '⋮' of the menu some cells hold."""
    return cell.inner_text().replace("\u22ee", "").strip()


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


def expect_blocked(page, button, pattern: str) -> None:
    """The form's note says why it cannot run, and the run button is disabled while it does."""
    page.locator(".genl-estimate, .genl-strip").filter(has_text=re.compile(pattern, re.I)).first.wait_for()
    sync_api.expect(button).to_be_disabled()


def expect_enabled(button) -> None:
    sync_api.expect(button).to_be_enabled()


def fill_text_form(page, server) -> None:
    """Two timeline rows in frames and a tiny, fast job in the Advanced accordion (idempotent)."""
    page.get_by_role("tab", name="Text → video").click()
    unit = page.get_by_label("frames", exact=True).first
    if not unit.is_checked():  # the switch rewrites every row on the server: wait for it before editing
        end = page.locator('[data-testid="cell-0-1"]').first
        before = first_line(end)
        unit.check()
        page.wait_for_function("before => document.querySelector('[data-testid=\"cell-0-1\"]')"
                               ".innerText.replace(/\u22ee/g, '').trim() !== before", arg=before)
    set_cell(page, 0, 0, 0)
    set_cell(page, 0, 1, 7)
    set_cell(page, 0, 2, "a red circle moving left")
    set_cell(page, 1, 0, 8)
    set_cell(page, 1, 1, 15)
    set_cell(page, 1, 2, "a blue square moving right")
    if not page.get_by_label("Length (frames)", exact=True).first.is_visible():
        page.get_by_text("Advanced", exact=True).first.click()
    for label, value in [("Length (frames)", 16), ("Width", 32), ("Height", 32), ("Frames per clip", 8),
                         ("Clip spacing (frames)", 4)]:
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

    # the result plays in a loop, scaled sharply (never a blurry stretch of the 32x32 video)
    assert page.locator(".genl-result video").first.get_attribute("loop") is not None
    assert page.locator(".genl-result video").first.evaluate("v => getComputedStyle(v).imageRendering") == "pixelated"
    # no job running: Cancel is not the prominent red button
    assert "stop" not in (page.locator(".genl-cancel").first.get_attribute("class") or "")

    # phone width: no sideways scrolling, the strip's text readable, Jobs keeps status/result/created/prompt
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "ui_phone_jobs.png"), full_page=True)
    shown = page.locator(".genl-jobs th").evaluate_all(
        "hs => hs.filter(h => getComputedStyle(h).display != 'none')"
        ".map(h => h.innerText.split('\\n')[0].trim())")  # without the column menu's '⋮'
    assert shown == ["status", "result", "created", "prompt"]
    page.get_by_role("tab", name="Text → video").click()
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "ui_phone_text.png"), full_page=True)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    print("phone scroll width", width)
    assert width <= 400
    page.set_viewport_size({"width": 1300, "height": 1600})


def test_bad_inputs_show_errors(server, page, tmp_path):
    fill_text_form(page, server)
    generate = page.get_by_role("button", name="Generate")
    # a gap in the timeline: shown live under the strip, and the run button is disabled meanwhile
    set_cell(page, 1, 0, 10)
    page.locator(".genl-strip .genl-error").filter(has_text="no prompt").first.wait_for()
    expect_blocked(page, generate, "gap|no prompt")
    set_cell(page, 1, 0, 8)
    expect_enabled(generate)
    # an empty prompt
    set_cell(page, 0, 2, " ")
    expect_blocked(page, generate, "empty")
    set_cell(page, 0, 2, "a red circle")
    # a negative length, then one above the server's limit (--max-frames 64): the note is web advice
    set_number(page, "Length (frames)", -4)
    expect_blocked(page, generate, "at least 1 frame")
    set_number(page, "Length (frames)", 100)
    expect_blocked(page, generate, "limit of 64 frames")
    assert "--max-frames" not in page.locator(".genl-estimate").first.inner_text()
    set_number(page, "Length (frames)", 16)

    # uploads that are not videos, in the Edit tab
    page.get_by_role("tab", name="Edit a video").click()
    not_video = tmp_path / "notes.mp4"  # named like a video: the box itself accepts only video types
    not_video.write_text("not a video")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    edit = page.get_by_role("button", name="Edit video")
    expect_blocked(page, edit, "no video given|source prompt is empty")
    # the box accepts only video types, so the file picker offers no notes or photos
    assert ".mp4" in (page.locator('.genl-upload input[type="file"]').first.get_attribute("accept") or "")
    page.get_by_label("Source prompt: what the video shows").first.fill("a red circle")
    upload = page.locator('.genl-upload input[type="file"]').first
    upload.set_input_files(str(not_video))
    page.locator(".genl-video-info").filter(has_text="Cannot use this file").first.wait_for()
    assert "not a video" in page.locator(".genl-video-info").first.inner_text()
    sync_api.expect(edit).to_be_disabled()  # no job can start from a file that is not a video
    page.locator('.genl-upload button[aria-label="Clear"]').first.click()
    upload.set_input_files(str(empty))
    page.locator(".genl-video-info").filter(has_text="empty").first.wait_for()
    sync_api.expect(edit).to_be_disabled()
    # a real video (one of the examples): the timeline is rescaled to it and the button comes back
    page.locator('.genl-upload button[aria-label="Clear"]').first.click()
    upload.set_input_files(str(ROOT / "assets" / "examples" / "red_circle_grass.mp4"))
    page.locator(".genl-video-info").filter(has_text="frames").first.wait_for()
    expect_enabled(edit)

    # the server is still fine
    page.get_by_role("tab", name="Settings / About").click()
    page.get_by_text("Workers:").first.wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui_after_bad_inputs.png"), full_page=True)
