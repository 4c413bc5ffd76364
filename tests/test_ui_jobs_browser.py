"""The Jobs tab in a real browser (Debian's Chromium via Playwright): thumbnails of finished jobs, 'Load these
settings into the tab' for a text-to-video and an edit job, and the table at phone width (390x844).

Its own app (the real one, built by app.build) runs the synthetic job function (tests/conftest_app.py), so a
job takes a fraction of a second and the test stays fast. Never runs `playwright install`.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest

from conftest_app import SYNTHETIC_JOB, free_port

ROOT = Path(__file__).resolve().parent.parent
# GENL_SCREENSHOTS=docs/screenshots refreshes the README's Jobs screenshots; by default they stay test artifacts
SCREENSHOTS = Path(os.environ.get("GENL_SCREENSHOTS", Path(__file__).resolve().parent / "artifacts"))
VIDEO = ROOT / "assets" / "examples" / "red_circle_grass.mp4"

from browser import open_page, sync_api  # noqa: E402  (skips this module without Chromium / Playwright)
expect = sync_api.expect


@pytest.fixture(scope="module")
def app():
    import app as app_module

    root = Path(tempfile.mkdtemp(prefix="genl-jobs-ui-"))
    port = free_port()
    args = app_module.parse_args(["--port", str(port), "--outputs", str(root / "outputs"), "--device", "cpu",
                                  "--max-frames", "64"])
    studio, demo = app_module.build(args, job_fn=SYNTHETIC_JOB)
    studio.wait_ready(120)
    app_module.launch(demo, args, prevent_thread_lock=True)
    yield studio, f"http://127.0.0.1:{port}/"
    demo.close()
    studio.close()


@pytest.fixture(scope="module")
def page(app):
    with open_page(app[1], height=1000, timeout_ms=30_000, ready_tab="Jobs") as page:
        yield page


def text_job(studio, seed: int):
    from genl.settings import CoDenoiseSettings, GenerateSettings

    return studio.submit(GenerateSettings(
        prompt='{"segments": [{"start": 0, "end": 5, "prompt": "a red circle", "negative": "blurry"}, '
               '{"start": 6, "end": 11, "prompt": "a blue square", "negative": ""}]}',
        num_frames=12, width=32, height=32, fps=6.0, steps=2, seed=seed, guidance=5.5, model="demo",
        codenoise=CoDenoiseSettings(clip_length=8, stride=2, weights="pyramid")))


def edit_job(studio, video: Path, seed: int):
    from genl.settings import CoDenoiseSettings, EditSettings

    return studio.submit(EditSettings(
        prompt="0-9: a yellow circle | 10-15: a green circle", video=str(video), source_prompt="a red circle",
        start=0.0, end=2.0, num_frames=16, width=64, height=64, fps=8.0, steps=2, seed=seed, strength=0.75,
        model="demo", codenoise=CoDenoiseSettings(clip_length=8, stride=4)))


def same_settings(new, old) -> None:
    """The job the loaded tab made has the old one's settings (its timeline as JSON, the same segments)."""
    from genl.timeline import load_timeline

    assert new.id != old.id
    a, b = dict(new.spec.settings), dict(old.spec.settings)
    assert load_timeline(a.pop("prompt")) == load_timeline(b.pop("prompt"))
    assert a == b


def open_jobs(page) -> None:
    page.get_by_role("tab", name="Jobs").click()
    page.get_by_role("button", name="Refresh", exact=True).click()


def job_row(page, job_id: str):
    """The Jobs table's visible row of a job (its cells are divs named cell-<row>-<column>)."""
    cell = page.locator('.genl-jobs [data-testid^="cell-"]').filter(has_text=job_id).first
    cell.wait_for()
    return cell.locator("xpath=..")


def select_job(page, job_id: str) -> None:
    job_row(page, job_id).locator('[data-testid$="-2"]').click()  # the status cell
    expect(page.get_by_label("Selected job id", exact=True)).to_have_value(job_id)


def timeline_cells(page, columns: int = 4) -> list[list[str]]:
    """The visible timeline table's rows (the tab's first visible table), empty cells dropped."""
    rows = page.locator(".table-wrap").locator("visible=true").first.evaluate(
        "(t, n) => { const out = {}; t.querySelectorAll('[data-testid^=\"cell-\"]').forEach(c => {"
        " const [_, r, k] = c.dataset.testid.split('-').map(Number); if (k < n) (out[r] = out[r] || [])[k] ="
        " c.innerText.trim(); }); return Object.values(out); }", columns)
    return [[c for c in row if c] for row in rows]


def visible(page, label: str):
    return page.get_by_label(label, exact=True).locator("visible=true").first


def advanced(page, label: str):
    """A field of the shown tab's Advanced accordion (opened when closed)."""
    if not visible(page, label).count():
        page.get_by_text("Advanced", exact=True).locator("visible=true").first.click()
    return visible(page, label)


def test_thumbnails_appear_when_jobs_finish(app, page):
    studio, _ = app
    job = text_job(studio, seed=11)
    open_jobs(page)
    studio.wait(job.id, 60)
    row = job_row(page, job.id)
    thumb = row.locator("img.genl-thumb")
    thumb.wait_for(timeout=15_000)  # the table refreshes every 2 s
    src = thumb.get_attribute("src")
    assert "/results/" in src and "private" not in src
    page.wait_for_function("img => img.complete && img.naturalWidth == 32", arg=thumb.element_handle())
    # the image is served from the results folder only: the private folder stays blocked
    private = next(studio.private.rglob("*.sqlite*"), None) or next(studio.private.iterdir())
    status = page.evaluate("u => fetch(u).then(r => r.status)", f"gradio_api/file={private}")
    assert status >= 400


def load_into_tab(studio, page, job, tab: str) -> None:
    """Wait for the job, pick it in Jobs, press 'Load these settings into the tab' and see `tab` open."""
    studio.wait(job.id, 60)
    open_jobs(page)
    select_job(page, job.id)
    page.get_by_role("button", name="Load these settings into the tab").click()
    page.locator(".toast-body").filter(has_text=f"Loaded the settings of job {job.id}").first.wait_for()
    expect(page.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true")


def test_load_settings_into_text_tab(app, page):
    studio, _ = app
    job = text_job(studio, seed=4242)
    load_into_tab(studio, page, job, "Text → video")
    expect(advanced(page, "Seed")).to_have_value("4242")
    expect(advanced(page, "Length (frames)")).to_have_value("12")
    expect(visible(page, "frames")).to_be_checked()
    page.locator(".genl-strip").locator("visible=true").filter(has_text="a blue square").first.wait_for()
    cells = timeline_cells(page)
    assert cells == [["0", "5", "a red circle", "blurry"], ["6", "11", "a blue square"]], cells
    # the loaded form runs as it is and makes the same settings (the seed included)
    page.get_by_role("button", name="Generate", exact=True).click()
    page.locator('.genl-status[data-status="done"]').locator("visible=true").first.wait_for(timeout=60_000)
    same_settings(studio.list(1)[0], job)


def test_load_edit_job_with_and_without_its_upload(app, page, tmp_path):
    studio, _ = app
    video = tmp_path / "clip.mp4"
    video.write_bytes(VIDEO.read_bytes())
    job = edit_job(studio, video, seed=77)
    load_into_tab(studio, page, job, "Edit a video")
    expect(advanced(page, "Seed")).to_have_value("77")
    expect(visible(page, "Source prompt: what the video shows")).to_have_value("a red circle")
    page.locator(".genl-video-info").locator("visible=true").filter(has_text="16 frames").first.wait_for()
    page.locator(".genl-strip").locator("visible=true").filter(has_text="a green circle").first.wait_for()
    page.wait_for_timeout(500)  # the upload's inspection has run: the loaded rows must still be there
    cells = timeline_cells(page, 3)
    assert cells == [["0", "9", "a yellow circle"], ["10", "15", "a green circle"]], cells
    edit_button = page.get_by_role("button", name="Edit video", exact=True)
    expect(edit_button).to_be_enabled()
    edit_button.click()
    page.locator('.genl-status[data-status="done"]').locator("visible=true").first.wait_for(timeout=60_000)
    same_settings(studio.list(1)[0], job)

    # the kept upload is gone: the rest still fills, and the page says so plainly
    Path(job.spec.settings["video"]).unlink()
    open_jobs(page)
    select_job(page, job.id)
    page.get_by_role("button", name="Load these settings into the tab").click()
    page.locator(".toast-body").filter(has_text=re.compile("no longer kept on the server")).first.wait_for()
    expect(page.get_by_role("tab", name="Edit a video")).to_have_attribute("aria-selected", "true")
    expect(advanced(page, "Seed")).to_have_value("77")
    expect(page.get_by_role("button", name="Edit video", exact=True)).to_be_disabled()


def test_jobs_at_phone_width(app, page):
    studio, _ = app
    for job in [text_job(studio, seed=5), text_job(studio, seed=6)]:
        studio.wait(job.id, 60)
    for close in page.locator(".toast-close").all():
        if close.is_visible():
            close.click()
    page.set_viewport_size({"width": 1300, "height": 1000})
    open_jobs(page)
    page.locator(".genl-jobs img.genl-thumb").locator("visible=true").first.wait_for()
    page.wait_for_timeout(500)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "desktop_jobs.png"))
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(700)
    page.screenshot(path=str(SCREENSHOTS / "phone_jobs.png"))
    shown = page.locator(".genl-jobs th").evaluate_all(
        "hs => hs.filter(h => getComputedStyle(h).display != 'none').map(h => h.innerText.trim())")
    assert shown == ["status", "result", "created", "prompt"], shown
    overflow = page.evaluate("() => [document.documentElement.scrollWidth, ...['.table-wrap', "
                             "'.virtual-table-viewport'].flatMap(s => { const e = document.querySelector("
                             "'.genl-jobs ' + s); return [e.scrollWidth, e.clientWidth]; })]")
    assert overflow[0] <= 390 and overflow[1] <= overflow[2] and overflow[3] <= overflow[4], overflow
    # the timeline at 390 px: no sideways scrolling, its from/to headers on one line
    page.get_by_role("tab", name="Text → video").click()
    page.locator(".genl-timeline").locator("visible=true").first.wait_for()
    page.wait_for_timeout(500)
    page.screenshot(path=str(SCREENSHOTS / "phone_timeline.png"))
    sizes = page.locator(".genl-timeline").locator("visible=true").first.evaluate(
        "t => [document.documentElement.scrollWidth, t.querySelector('.table-wrap').scrollWidth, "
        "t.querySelector('.table-wrap').clientWidth, ...[0, 1].map(c => t.querySelector("
        "`th[data-testid=\"header-${c}\"] span`).getBoundingClientRect().height)]")
    assert sizes[0] <= 390 and sizes[1] <= sizes[2] and max(sizes[3:]) < 24, sizes
    page.set_viewport_size({"width": 1300, "height": 1000})
