"""Uploaded ready control videos survive a restart (copied into outputs/private/uploads like the main upload),
and the settings.json served with a result names files, never the server's private paths."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest_app import SYNTHETIC_JOB
from genl.jobs import Studio
from genl.kinds.base import public_settings, save_outputs
from genl.settings import GenerateSettings, control_specs

FIGURE = Path(__file__).resolve().parent.parent / "assets" / "examples" / "stick_figure_walks.mp4"


def test_uploaded_control_videos_are_kept_across_a_restart(tmp_path):
    gradio_tmp = tmp_path / "gradio"  # Gradio's temp folder, cleaned at will
    gradio_tmp.mkdir()
    pose, depth = gradio_tmp / "pose.mp4", gradio_tmp / "depth.MP4"
    shutil.copyfile(FIGURE, pose)
    shutil.copyfile(FIGURE, depth)
    settings = GenerateSettings(prompt="a red figure walking", num_frames=16, width=64, height=64, steps=2,
                                pipeline="tuning_free", controls=[{"type": "pose", "video": str(pose)},
                                                                  {"type": "edges", "video": str(depth)}])
    outputs = tmp_path / "outputs"
    studio = Studio(outputs, devices=["cpu"], job_fn=SYNTHETIC_JOB, start=False)
    try:
        job = studio.submit(settings)
    finally:
        studio.close()
    shutil.rmtree(gradio_tmp)

    studio = Studio(outputs, devices=["cpu"], job_fn=SYNTHETIC_JOB, start=False)  # a restart
    try:
        kept = [c["video"] for c in studio.get(job.id).spec.settings["controls"]]
        uploads = (outputs / "private" / "uploads").resolve()
        for path in kept:
            assert Path(path).is_file() and Path(path).parent == uploads, path
        assert Path(kept[0]).read_bytes() == FIGURE.read_bytes() and kept[1].endswith(".mp4")
        assert kept[0] == kept[1]  # content-named: the same video is kept once
        assert studio.rerun(job.id).spec.settings["controls"][0]["video"] == kept[0]
    finally:
        studio.close()


def test_served_settings_name_files_not_private_paths(tmp_path):
    private = "/srv/genl/outputs/private"
    settings = GenerateSettings(prompt="a red figure walking", num_frames=2, width=16, height=16,
                                control_video=f"{private}/uploads/abc.mp4",
                                controls=[{"type": "pose", "video": f"{private}/uploads/pose.mp4"},
                                          {"type": "depth"}])
    out = save_outputs(np.zeros((2, 16, 16, 3), np.uint8), settings, tmp_path / "job", save_frames=False)
    text = Path(out["settings"]).read_text()
    assert private not in text and "/uploads/" not in text
    stored = json.loads(text)
    assert stored["control_video"] == "abc.mp4" and stored["controls"][0]["video"] == "pose.mp4"
    assert stored["controls"][1].get("video", "") == "" and stored["prompt"] == "a red figure walking"
    assert settings.controls[0]["video"] == f"{private}/uploads/pose.mp4"  # the job's own settings are untouched
    meta = public_settings({"kind": "edit", "video": "/x/private/uploads/v.mp4", "masks": {"upload": "/x/m.mp4"},
                            "cache_dir": "/x/private/cache", "tuned": "/x/private/tunings/t1"})
    assert (meta["video"], meta["masks"]["upload"], meta["cache_dir"], meta["tuned"]) == ("v.mp4", "m.mp4", "cache",
                                                                                          "t1")


def test_three_controls_from_the_tab_each_with_its_schedule_and_at_most_three():
    from genl import forms
    from genl.validation import check_numbers

    values = dict(prompt="a red figure walking", control_video=str(FIGURE), fps=8,
                  num_frames=16, width=64, height=64, model="demo", seed=1, steps=2, guidance=7.5,
                  clip_length=8, stride=4, scheduler="ddim", weights="flat", negative_prompt="", control_type="pose", detector="openpose_hand", control_scale=1.0,
                  second_type="depth", second_strength=0.5, second_start=0.2, second_end=0.8,
                  third_type="edges", third_strength=0.3, third_end=0.5, third_video="/tmp/e.mp4")
    settings = forms.pose_control_settings(values)
    got = [(c["type"], c["strength"], c["start"], c["end"], c["detector"]) for c in settings.controls]
    assert got == [("pose", 1.0, 0.0, 1.0, "openpose_hand"), ("depth", 0.5, 0.2, 0.8, ""),
                   ("edges", 0.3, 0.0, 0.5, "")]
    assert settings.controls[2]["video"] == "/tmp/e.mp4"
    check_numbers(settings)
    settings.validate()
    assert [s.type for s in control_specs(settings)] == ["pose", "depth", "edges"]
    assert len(forms.pose_control_settings(dict(values, third_type="none")).controls) == 2

    settings.controls.append({"type": "pose"})
    with pytest.raises(ValueError, match="At most 3 controls"):
        check_numbers(settings)
    with pytest.raises(ValueError, match="At most 3 controls"):
        settings.validate()
    settings.controls = [dict(settings.controls[0], strength=float("nan"))]
    with pytest.raises(ValueError, match="Control 1's strength must be a finite number"):
        check_numbers(settings)
    settings.controls = [dict(settings.controls[0], strength=1.0, end=3)]
    with pytest.raises(ValueError, match="Control 1's end"):
        check_numbers(settings)
    settings.controls = [dict(settings.controls[0], end=1, detector="depth_anything")]
    with pytest.raises(ValueError, match="Unknown pose detector 'depth_anything'"):
        settings.validate()
