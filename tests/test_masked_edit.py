"""Edit anything end to end: MaskSettings travel whole in the job settings (JSON, old stored jobs), the mask
preview and the edit job make masks the same way (one cache), and the mask video is a result file.

Tiny random-weight SD (tests/tiny.py) at 32 px on a shapes-world clip; masks by the demo world's colour method, and
by the bundled demo detectors on their own."""
from __future__ import annotations

import json

import numpy as np
import pytest

from genl.api import run_job
from genl.conditions.mask_settings import MaskSettings
from genl.settings import (CoDenoiseSettings, EditSettings, MaskPreviewSettings, settings_from_dict)
from genl.video_io import read_video

M8 = CoDenoiseSettings(clip_length=8, stride=4)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A red circle moving right over grass, 12 frames at 32 px, and its exact object masks."""
    from genl.demo.world import ClipSpec, clip_states, render_states, states_alpha
    from genl.video_io import write_mp4

    states = clip_states(ClipSpec("red", "circle", "right", "grass", 0.3, 0.5, 0.35, seed=0), 12)
    path = tmp_path_factory.mktemp("clip") / "red_circle.mp4"
    write_mp4(render_states(states, 0, 32), path, fps=8)
    return str(path), states_alpha(states, 32) > 0.5


def test_mask_settings_round_trip_through_json_and_old_jobs():
    masks = MaskSettings(method="colour", box_threshold=0.3, instance="index", index=1, keyframe_every=4,
                         dilate=0, feather=0.0)
    for settings in (EditSettings(video="v.mp4", mask_object="the red circle", masks=masks),
                     MaskPreviewSettings(video="v.mp4", object_prompt="the red circle", masks=masks)):
        back = settings_from_dict(json.loads(json.dumps(settings.to_dict())))
        assert back == settings and isinstance(back.masks, MaskSettings)
    # Jobs stored before MaskSettings carry only mask_method (with the old name of the detector method).
    old = settings_from_dict({"kind": "edit", "video": "v.mp4", "mask_object": "x", "mask_method": "grounded_sam"})
    assert old.masks == MaskSettings(method="grounded_sam2")
    assert settings_from_dict({"kind": "mask_preview", "mask_method": "colour"}).masks.method == "colour"
    with pytest.raises(ValueError, match="Unknown settings: mask_methd"):
        settings_from_dict({"kind": "edit", "mask_methd": "colour"})


def test_mask_settings_are_validated_with_the_job(clip):
    bad = EditSettings(video=clip[0], source_prompt="a red circle", prompt="a blue circle", mask_object="the red circle",
                       masks=MaskSettings(box_threshold=1.5), num_frames=12, width=32, height=32, codenoise=M8)
    with pytest.raises(ValueError, match="box threshold must lie between 0 and 1"):
        bad.validate()
    with pytest.raises(ValueError, match="Upload a mask video"):
        EditSettings(video=clip[0], source_prompt="a", prompt="b", masks=MaskSettings(method="upload"),
                     num_frames=12, width=32, height=32, codenoise=M8).validate()


def test_demo_world_masks_come_from_the_bundled_detectors():
    """'auto' with the demo model runs GroundingDINO + SAM 2 on the bundled tiny detectors (the real-video code
    path), with their measured settings, finds the named object among others, and refuses an absent one."""
    from genl.conditions.detector_models import demo_detectors_available
    from genl.conditions.masks import object_masks
    from genl.demo.detectors import sample_scene

    assert demo_detectors_available()
    spec, frames, truth, _, present = sample_scene(4242, 128, 8, distractors=1)
    found = object_masks(frames, f"the {spec.colour} {spec.shape}", demo=True)
    assert found.method == "grounded_sam2" and "demo-detectors" in found.note
    assert "every frame on its own, box threshold 0.25" in found.note  # demo_settings.json
    inter = np.logical_and(found.masks, truth).sum((1, 2))
    union = np.logical_or(found.masks, truth).sum((1, 2))
    assert (inter / union).mean() > 0.7
    chosen = MaskSettings(box_threshold=0.3)  # a user's own setting stays
    assert "box threshold 0.3" in object_masks(frames, f"the {spec.colour} {spec.shape}", demo=True,
                                                 settings=chosen).note
    absent = next(f"the {c} {s}" for c in ("purple", "yellow", "blue") for s in ("star", "triangle")
                  if (c, s) not in present)
    with pytest.raises(ValueError, match="No '.*' found in the video; best score"):
        object_masks(frames, absent, demo=True)


def test_demo_world_without_the_detectors_falls_back_to_the_labelled_colour_method(clip, monkeypatch):
    from genl.conditions import detector_models
    from genl.conditions.masks import object_masks

    monkeypatch.setattr(detector_models, "demo_detectors_available", lambda: False)
    frames, _ = read_video(clip[0])
    found = object_masks(frames, "the red circle", demo=True)
    assert found.method == "colour" and "stand-in" in found.note and "missing" in found.note


def test_preview_then_masked_edit_share_masks_and_publish_the_mask_video(clip, tiny_models, model_manager, tmp_path):
    from genl.jobs.worker import publish

    video, truth = clip
    masks = MaskSettings(method="colour", dilate=0, feather=0.0)
    cache = str(tmp_path / "cache")
    preview = run_job(MaskPreviewSettings(video=video, object_prompt="the red circle", masks=masks, cache_dir=cache,
                                          fps=8, width=32, height=32, samples=3), tmp_path / "preview")
    assert preview["ok"] and preview["method"] == "colour" and preview["num_frames"] == 12
    assert read_video(preview["video"])[0].shape == (3, 32, 32, 3)  # the overlay on 3 sampled frames
    assert read_video(preview["mask_video"])[0].shape == (12, 32, 32, 3)  # the masks of every frame

    settings = EditSettings(video=video, source_prompt="a red circle moving right over grass",
                            prompt="a blue circle moving right over grass", mask_object="the red circle", masks=masks,
                            width=32, height=32, steps=2, fps=8, model=tiny_models["sd"], codenoise=M8,
                            cache_dir=cache)
    out = run_job(settings, tmp_path / "work", models=model_manager)
    assert any("Object masks: colour" in n and "from the mask cache" in n for n in out["notices"])
    mask_video, _ = read_video(out["mask_video"])
    written = mask_video.mean(-1) > 127
    assert written.shape == truth.shape and (written == truth).mean() > 0.97
    # Outside the masks the result is the source (composite pastes it back; its feather touches only the edge).
    result, _ = read_video(out["video"])
    source, _ = read_video(video)
    from genl.conditions.masks import dilate

    far = ~dilate(truth, 4)
    diff = np.abs(result.astype(int) - source.astype(int)).mean(-1)
    assert diff[far].mean() < 3 < diff[truth].mean(), (diff[far].mean(), diff[truth].mean())
    # The worker moves the listed final files, the mask video among them, into the job's results folder.
    (tmp_path / "results").mkdir()
    published = publish(out, tmp_path / "results")
    assert published["mask_video"] == str(tmp_path / "results" / "masks.mp4")
    assert (tmp_path / "results" / "masks.mp4").is_file() and not (tmp_path / "work" / "masks.mp4").exists()
    assert json.load(open(published["settings"]))["masks"]["method"] == "colour"


def test_uploaded_mask_video_edits_without_an_object_prompt(clip, tiny_models, model_manager, tmp_path):
    from genl import forms
    from genl.conditions.mask_io import write_mask_video

    video, truth = clip
    upload = write_mask_video(truth, tmp_path / "mine.mp4", fps=8)
    masks = forms.mask_settings({"mask_video": str(upload), "mask_method": "auto", "dilate": 0})
    assert masks.method == "upload" and masks.dilate == 0 and masks.feather == MaskSettings.feather
    settings = EditSettings(video=video, source_prompt="a red circle", prompt="a blue circle", masks=masks,
                            width=32, height=32, steps=1, fps=8, model=tiny_models["sd"], codenoise=M8,
                            cache_dir=str(tmp_path / "cache"))
    out = run_job(settings, tmp_path / "out", models=model_manager)
    assert any("uploaded mask video mine.mp4" in n for n in out["notices"])
    assert read_video(out["mask_video"])[0].shape == (12, 32, 32, 3)
