"""The tabs' examples (ui/examples.py): each one's values make settings that validate, and the result it shows
was made with exactly those settings (assets/examples/make_results.py), small and playable."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import av
import pytest

from genl.kinds.base import public_settings

from ui.examples import EXAMPLES, RESULTS, tab_examples

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "assets" / "examples"))
from make_results import example_settings, portable  # noqa: E402

IDS = [e.name for e in EXAMPLES]


def test_every_job_tab_has_an_example():
    assert {e.tab for e in EXAMPLES} >= {"text", "edit", "masks", "pose"}
    assert len(IDS) == len(set(IDS))


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_example_settings_validate(example):
    from genl.validation import check_form
    from ui.timeline_rows import inspect_video

    values = example.form_values()
    check_form(values)
    settings = example_settings(example)
    settings.validate()
    assert settings.model == "demo" and settings.seed == values["seed"]
    video = getattr(settings, "video", "") or getattr(settings, "control_video", "")
    if video:  # the tab sizes the job from the (trimmed) video: the example's length must be what it gets
        got = inspect_video(video, fps=settings.fps, start=getattr(settings, "start", 0),
                            end=getattr(settings, "end", None), max_frames=1024)
        assert got["num_frames"] == settings.num_frames


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_example_result_matches_its_settings(example):
    assert example.result.exists(), f"run: python assets/examples/make_results.py {example.name}"
    settings = example_settings(example)
    made_with = json.loads(example.settings_file.read_text())
    expected = public_settings(portable(settings.to_dict()))  # as the job's served settings.json writes it
    made_with.pop("device"), expected.pop("device")
    assert made_with == expected, "the example's values changed since its result was made: run make_results.py"
    with av.open(str(example.result)) as f:
        stream = f.streams.video[0]
        frames = sum(1 for _ in f.decode(stream))
        assert stream.codec_context.name == "h264"
        assert (stream.codec_context.width, stream.codec_context.height) == (settings.width, settings.height)
    assert frames == settings.num_frames


def test_results_stay_small():
    total = sum(p.stat().st_size for p in RESULTS.glob("*"))
    assert total < 3 * 2**20


def test_tab_examples_filter():
    assert all(e.tab == "pose" for e in tab_examples("pose")) and tab_examples("pose")
