"""What people type -> settings: timeline rows in seconds or frames, row buttons, the strip data."""
from __future__ import annotations

import json

import pytest

from genl import forms
from ui import timeline_rows as rows_ui


def test_rows_in_seconds_and_frames():
    rows = [[0, 2, "a cat", ""], [2, 4, "a dog", "blurry"]]
    assert rows_ui.rows_to_frames(rows, "seconds", 8) == [(0, 15, "a cat", ""), (16, 31, "a dog", "blurry")]
    assert rows_ui.rows_to_frames([[0, 15, "a cat", None]], "frames", 8) == [(0, 15, "a cat", "")]
    tl = rows_ui.rows_to_timeline(rows, "seconds", 8, 32)
    assert [s.end for s in tl.segments] == [15, 31]
    assert rows_ui.convert_rows(rows, "seconds", "frames", 8) == [[0, 15, "a cat", ""], [16, 31, "a dog", "blurry"]]
    assert rows_ui.convert_rows([[0, 15, "a", ""]], "frames", "seconds", 8) == [[0.0, 2.0, "a", ""]]
    assert rows_ui.rows_to_frames([[0, 2, "a", ""], [None, "", "", ""]], "seconds", 8) == [(0, 15, "a", "")]


@pytest.mark.parametrize("rows, unit, message", [
    ([[0, -2, "a cat", ""]], "seconds", "negative"),
    ([[2, 1, "a cat", ""]], "seconds", "before it starts"),
    ([[0, "x", "a cat", ""]], "frames", "not a number"),
    ([], "frames", "empty"),
])
def test_bad_rows(rows, unit, message):
    with pytest.raises(ValueError, match=message):
        rows_ui.rows_to_frames(rows, unit, 8)


def test_row_buttons():
    rows = [[0, 4, "a cat", ""]]
    assert rows_ui.add_row(rows, "seconds", 8, 64) == [[0, 4, "a cat", ""], [4, 8.0, "", ""]]
    assert rows_ui.split_row(rows, 0, "seconds") == [[0, 2, "a cat", ""], [2, 4, "a cat", ""]]
    assert rows_ui.split_row([[0, 15, "a", ""]], None, "frames") == [[0, 7, "a", ""], [8, 15, "a", ""]]
    assert rows_ui.remove_row([[0, 1, "a", ""], [1, 2, "b", ""]], 0) == [[1, 2, "b", ""]]
    assert rows_ui.remove_row([[0, 1, "a", ""], [1, 2, "b", ""]], None) == [[0, 1, "a", ""]]
    with pytest.raises(ValueError, match="single frame"):
        rows_ui.split_row([[3, 3, "a", ""]], 0, "frames")


def test_strip_data_reports_problems_without_raising():
    data = rows_ui.strip_data([[0, 5, "a", ""], [8, 15, "b", ""]], "frames", 8, 16, 8, 4)
    assert data["windows"] == [(0, 8), (4, 12), (8, 16)] and len(data["segments"]) == 2
    assert any("gap" in e for e in data["errors"])
    data = rows_ui.strip_data([[0, 15, "a", ""]], "frames", 8, 16, 32, 4)
    assert any("longer than the video" in e for e in data["errors"])


def test_generate_settings_from_form_values():
    values = dict(rows=[[0, 1, "a cat", ""], [1, 2, "a dog", ""]], unit="seconds", num_frames=16, fps=8,
                  width=64, height=64, model="demo", seed=5, randomize=False, steps=3, guidance=7.5,
                  scheduler="ddim", clip_length=8, stride=4, weights="gaussian", negative_prompt="",
                  pipeline="animatediff")
    values["prompt"] = rows_ui.timeline_prompt(values["rows"], values["unit"], values["fps"])
    s = forms.generate_settings(values)
    s.validate()
    assert s.seed == 5 and s.codenoise.weights == "gaussian"
    assert [seg["end"] for seg in json.loads(s.prompt)["segments"]] == [7, 15]
    assert forms.generate_settings(dict(values, randomize=True)).seed >= 0
    assert rows_ui.summarize_prompt(s.prompt) == "a cat → a dog"
