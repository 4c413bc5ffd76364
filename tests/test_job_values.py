"""'Load these settings into the tab' without a browser: a job's settings -> the tab's values -> the tab's
own builder gives the same settings again, for every job tab (ui/job_values.py is the reverse of forms.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from genl import forms
from genl.settings import settings_from_dict
from genl.tuning.settings import TuneSettings
from ui import common, job_values, tab_edit, tab_masks, tab_pose
from ui.timeline_rows import FRAMES, SECONDS, timeline_prompt

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"
VIDEO = str(EXAMPLES / "red_circle_grass.mp4")
FIGURE = str(EXAMPLES / "stick_figure_walks.mp4")


def base_values(**kw) -> dict:
    values = dict(rows=[[0, 1.5, "a red circle", "blurry"], [1.5, 3, "a blue square", ""]], unit=SECONDS,
                  num_frames=24, fps=8, width=64, height=48, model="demo", seed=1234, randomize=False, steps=7,
                  guidance=6.5, scheduler="ddim", clip_length=8, stride=2, weights="pyramid",
                  negative_prompt="low quality")
    values.update(kw)
    return values


def build(make, values: dict) -> dict:
    """What the tab's run button submits (common.form_values adds the timeline text)."""
    return make(common.form_values(dict(values))).to_dict()


def round_trip(make, values: dict, tab: str) -> dict:
    first = build(make, values)
    got_tab, loaded, notes = job_values.job_values(first)
    assert got_tab == tab and notes == []
    assert loaded["unit"] == FRAMES and loaded["seed"] == values["seed"] and loaded["randomize"] is False
    again = build(make, loaded)
    assert again == first
    return loaded


def test_text_to_video_round_trip():
    loaded = round_trip(forms.generate_settings, base_values(pipeline="tuning_free"), job_values.TEXT)
    # seconds rows come back in frames: [0, 1.5) s at 8 fps is frames 0-11, with the row's negative prompt
    assert loaded["rows"] == [[0, 11, "a red circle", "blurry"], [12, 23, "a blue square", ""]]
    assert loaded["pipeline"] == "tuning_free" and loaded["weights"] == "pyramid"


def test_edit_round_trip():
    values = base_values(video=VIDEO, source_prompt="a red circle over grass", start=0.5, end=3.5, strength=0.8)
    loaded = round_trip(tab_edit.make, values, job_values.EDIT)
    assert loaded["video"] == VIDEO and loaded["start"] == 0.5 and loaded["end"] == 3.5


def test_edit_anything_round_trip():
    values = base_values(video=VIDEO, source_prompt="a red circle", start=0, end=0, strength=1.0,
                         mask_object="the red circle", mask_method="colour", box_threshold=0.4, text_threshold=0.3,
                         instance="index", instance_index=1, keyframe_every=4, dilate=3, feather=2.5,
                         mask_video="", keep_edges=True, controlnet="demo", control_scale=0.7)
    loaded = round_trip(tab_masks.make, values, job_values.MASKS)
    assert loaded["mask_method"] == "colour" and loaded["keep_edges"] is True and loaded["instance_index"] == 1


def test_pose_control_round_trip():
    values = base_values(control_video=FIGURE, control_type="pose", controlnet="demo-pose", control_scale=0.9,
                         control_start=0.1, control_end=0.8, control_maps="", second_type="edges",
                         second_model="demo", second_strength=0.5, second_start=0.0, second_end=0.5,
                         second_video="")
    loaded = round_trip(tab_pose.make, values, job_values.POSE)
    assert loaded["control_type"] == "pose" and loaded["second_type"] == "edges"
    assert len(build(tab_pose.make, loaded)["controls"]) == 2


def test_old_edge_control_job_loads_as_one_control():
    settings = forms.edge_control_settings(common.form_values(base_values(control_video=FIGURE,
                                                                         controlnet="demo", control_scale=0.6)))
    tab, loaded, _ = job_values.job_values(settings.to_dict())
    assert tab == job_values.POSE
    assert (loaded["control_type"], loaded["controlnet"], loaded["control_scale"]) == ("edges", "demo", 0.6)
    assert loaded["second_type"] == "none" and loaded["third_type"] == "none"


def test_three_controls_round_trip_with_their_detectors():
    values = base_values(control_video=FIGURE, control_type="pose", controlnet="demo-pose", control_scale=0.9,
                         control_start=0.1, control_end=0.8, control_maps="", detector="openpose_hand",
                         second_type="edges", second_model="demo", second_strength=0.5, second_start=0.0,
                         second_end=0.5, second_video="", third_type="depth", third_model="demo",
                         third_strength=0.4, third_start=0.2, third_end=1.0, third_video="")
    loaded = round_trip(tab_pose.make, values, job_values.POSE)
    assert (loaded["detector"], loaded["third_type"], loaded["third_strength"]) == ("openpose_hand", "depth", 0.4)
    assert [c["type"] for c in build(tab_pose.make, loaded)["controls"]] == ["pose", "edges", "depth"]


def test_tune_and_tuned_edit_values():
    tune = TuneSettings(video=VIDEO, start=1.0, end=4.0, fps=6.0, prompt="0-11: a red circle", method="full",
                        epochs=3, batch_size=2, model="demo", learning_rate=1e-4, identifier_dropout=0.2,
                        clip_length=8, stride=2, width=64, height=64)
    tab, loaded, _ = job_values.job_values(tune.to_dict())
    assert tab == job_values.TUNE
    for name, value in loaded.items():
        assert getattr(tune, name) == value, name
    edit = settings_from_dict(dict(kind="edit", tuned="/srv/out/private/tunings/abc123", video=VIDEO,
                                   from_noise=True, use_identifiers=False, prompt="0-15: a blue square", steps=9))
    tab, loaded, _ = job_values.job_values(edit.to_dict())
    assert tab == job_values.TUNE
    assert loaded["tuned"] == "abc123" and loaded["from_noise"] == "noise" and loaded["target"] == edit.prompt


def test_keyframes_and_text_timelines():
    rows, note = job_values.timeline_rows("0: a red circle | 10: a blue square", 16)
    assert rows == [[0, 9, "a red circle", ""], [10, 15, "a blue square", ""]] and "keyframes" in note
    rows, note = job_values.timeline_rows("a red circle --neg blurry", 16)  # one open segment
    assert rows == [[0, 15, "a red circle", "blurry"]] and note == ""
    assert json.loads(timeline_prompt(rows, FRAMES, 8))["segments"][0]["end"] == 15


def test_settings_without_a_field_are_named():
    settings = forms.generate_settings(common.form_values(base_values()))
    settings.codenoise.loop, settings.motion = True, (1.0, 0.0)
    tab, loaded, notes = job_values.job_values(settings.to_dict())
    assert tab == job_values.TEXT and len(notes) == 1
    assert "codenoise.loop" in notes[0] and "motion" in notes[0] and "seed" not in notes[0]


def test_the_clip_schedule_has_a_field_and_round_trips():
    from ui.common import SCHEDULE_CHOICES

    from genl.plan import SCHEDULES

    offered = {v for _, v in SCHEDULE_CHOICES}
    assert offered == {"fixed", "shifted", "settled", "partitioned"} and offered <= set(SCHEDULES)  # (benches add experiments)
    for schedule in offered:
        loaded = round_trip(forms.generate_settings, base_values(schedule=schedule, stride=16), job_values.TEXT)
        assert loaded["schedule"] == schedule
    assert build(forms.generate_settings, base_values())["codenoise"]["schedule"] == "fixed"  # the default


def test_fusion_has_a_field_and_round_trips():
    loaded = round_trip(forms.generate_settings, base_values(pipeline="animatediff", schedule="settled", stride=8,
                                                           fusion="motion"), job_values.TEXT)
    assert loaded["fusion"] == "motion"
    assert build(forms.generate_settings, base_values())["codenoise"]["fusion"] == "output"  # the default


def test_shared_noise_has_a_field_and_round_trips():
    loaded = round_trip(forms.generate_settings, base_values(pipeline="animatediff", noise_share=0.3), job_values.TEXT)
    assert loaded["noise_share"] == 0.3
    assert build(forms.generate_settings, base_values(pipeline="animatediff"))["noise_share"] == 0.0  # the default
    # the tuning-free generator always shares all of its noise: the field does not apply to it
    assert build(forms.generate_settings, base_values(pipeline="tuning_free", noise_share=0.3))["noise_share"] == 0.0


def test_previews_have_no_tab():
    with pytest.raises(ValueError, match="no settings to load"):
        job_values.tab_for({"kind": "mask_preview"})


def test_upload_inspection_keeps_loaded_rows_and_size():
    """A job's video loaded after its rows: rows that cover the trimmed video and a size of its shape stay;
    rows that do not fit are spread over the new length, and the size follows the video."""
    from types import SimpleNamespace

    studio = SimpleNamespace(max_frames=64)
    rows = [[0, 9, "a yellow circle", ""], [10, 15, "a green circle", ""]]
    got = common.inspect_upload(studio, VIDEO, 0, 2, 8, "demo", rows, FRAMES, (64, 64))
    assert got[2:5] == (16, 64, 64) and got[5] == common.gr.update()
    got = common.inspect_upload(studio, VIDEO, 0, 1, 8, "demo", rows, FRAMES, (64, 64))
    assert got[2:5] == (8, 128, 128) and got[5] == [[0, 3, "a yellow circle", ""], [4, 7, "a green circle", ""]]
