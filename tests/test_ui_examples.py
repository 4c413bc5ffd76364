"""Clicking a tab's example in a real browser (Debian's Chromium via Playwright) fills its fields and shows the
result made ahead at once, without running a job. Never runs `playwright install`."""
from __future__ import annotations

import pytest

from browser import open_page
from ui.examples import SHOWN, tab_examples


@pytest.fixture(scope="module")
def page(server):
    with open_page(server.url, height=1800) as page:
        yield page


@pytest.mark.parametrize("tab,title", [("text", "Text → video"), ("edit", "Edit a video")])
def test_example_fills_the_tab_and_shows_its_result(server, page, tab, title):
    example = tab_examples(tab)[0]
    assert example.result.exists()
    jobs_before = len(server.studio.list(limit=1000))
    page.get_by_role("tab", name=title).click()
    panel = page.locator('[role="tabpanel"]:visible').first
    panel.locator(f"#genl-examples-{tab}").get_by_text(example.label, exact=True).click()

    # the prebuilt result, with the note that no job ran
    panel.locator(".genl-status", has_text=SHOWN).wait_for()
    video = panel.locator(".genl-result video").first
    video.wait_for(state="attached")
    assert example.result.name in (video.get_attribute("src") or "")
    # the fields: the timeline's prompts, the Advanced settings, the source prompt of an edit
    for row in example.values["rows"]:
        panel.locator('[role="gridcell"]', has_text=row[2]).first.wait_for()  # the timeline's cells
    if not panel.get_by_label("Length (frames)", exact=True).first.is_visible():
        panel.get_by_text("Advanced", exact=True).first.click()
    values = example.form_values()
    assert float(panel.get_by_label("Length (frames)", exact=True).first.input_value()) == values["num_frames"]
    assert float(panel.get_by_label("number input for Steps", exact=True).first.input_value()) == values["steps"]
    assert float(panel.get_by_label("Seed", exact=True).first.input_value()) == values["seed"]
    if "source_prompt" in example.values:
        assert panel.get_by_label("Source prompt: what the video shows").first.input_value() == \
            example.values["source_prompt"]
    assert panel.get_by_label("Job id", exact=True).first.input_value() == ""
    assert len(server.studio.list(limit=1000)) == jobs_before  # shown, not made
