"""Edit anything and edge control: previews through the Studio facade, jobs end to end through the app.

Offline: the bundled demo model (64 px, 4 steps, M=8, S=4) and the example videos in assets/examples.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest_app import ROOT

from genl.models import DEMO_CONTROLNET_DIR, demo_available

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

EXAMPLE = ROOT / "assets" / "examples" / "red_circle_grass.mp4"
needs_demo = pytest.mark.skipif(not demo_available(), reason="assets/demo-model is missing")
ROWS = {"headers": ["from", "to", "prompt", "negative"], "metadata": None}


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from genl.jobs import Studio

    s = Studio(tmp_path_factory.mktemp("studio"), devices=["cpu"], threads=True)  # previews run in the queue
    s.wait_ready(120)
    yield s
    s.close()


def test_example_videos_exist_and_are_small():
    assert EXAMPLE.is_file() and EXAMPLE.stat().st_size < 1 << 20
    from genl.video_io import probe_video

    info = probe_video(EXAMPLE)
    assert (info.width, info.height) == (128, 128) and info.num_frames == 48


def test_mask_preview_demo_model_uses_the_bundled_detectors(studio):
    got = studio.preview_masks(str(EXAMPLE), "the red circle", "demo", size=(128, 128))
    assert got["ok"] and got["method"] == "grounded_sam2" and "demo-detectors" in got["note"]
    assert len(got["frames"]) == 4 and got["frames"][0].shape == (128, 128, 3)
    from genl.video_io import probe_video

    assert probe_video(got["mask_video"]).num_frames == 48  # the whole video's masks, to download
    from genl.video_io import read_video

    plain, _ = read_video(EXAMPLE, size=(128, 128), max_frames=1)
    assert np.abs(got["frames"][0].astype(int) - plain[0]).max() > 50  # the tint is drawn


def test_mask_preview_other_models_say_grounded_sam_is_missing(studio):
    got = studio.preview_masks(str(EXAMPLE), "the red circle", "stable-diffusion-v1-5/stable-diffusion-v1-5")
    assert not got["ok"] and "GroundingDINO" in got["note"] and "SAM 2" in got["note"]
    assert "hf download" in got["note"] and got["mask_video"] is None  # offline: how to get the models
    assert len(got["frames"]) == 4  # the frames still show, without made-up masks


def test_edge_preview_shows_edges_and_points_to_the_control_preview(studio):
    got = studio.preview_edges(str(EXAMPLE), fps=8, size=(128, 128))
    assert got["num_frames"] == 48 and len(got["frames"]) == 4
    assert studio.list() == []  # previews are light jobs: they leave no history rows
    assert set(np.unique(got["frames"][0])) <= {0, 255} and got["frames"][0].any()
    assert "OpenPose" in got["note"] and "control_preview" in got["note"]


def mask_preview_args(model, size, **mask):
    """The /mask_preview inputs in order: video, object, method, box/text thresholds, instance, index, keyframe
    every K, dilate, feather, mask video upload, model, trim start/end, fps, width, height."""
    m = dict(mask_object="the red circle", mask_method="auto", box_threshold=0.35, text_threshold=0.25,
             instance="largest", instance_index=0, keyframe_every=8, dilate=2, feather=1.5, mask_video=None)
    m.update(mask)
    return (handle_file(str(EXAMPLE)), *m.values(), model, 0, 0, 8, size, size)


def test_previews_in_the_app(server, client):
    import re

    frames, note, mask_video = client.predict(*mask_preview_args("demo", 128), api_name="/mask_preview")
    assert len(frames) == 4 and "demo-detectors" in note and mask_video.endswith(".mp4")
    _, wider, _ = client.predict(*mask_preview_args("demo", 128, dilate=12), api_name="/mask_preview")
    coverage = [float(re.search(r"Coverage ([\d.]+) %", n).group(1)) for n in (note, wider)]
    assert coverage[1] > coverage[0] > 0  # the Advanced mask settings reach the masks
    frames, note, mask_video = client.predict(*mask_preview_args(server.models["sd"], 32), api_name="/mask_preview")
    assert len(frames) == 4 and "GroundingDINO" in note and mask_video is None
    strip, control_video, note = client.predict(handle_file(str(EXAMPLE)), "edges", "demo", 8, 128, 128,
                                                api_name="/control_preview")
    assert control_video and "Canny" in note


def edit_anything_job(**overrides):
    params = dict(rows=dict(ROWS, data=[[0, 15, "a yellow circle moving right over grass", ""]]), unit="frames",
                  video=handle_file(str(EXAMPLE)), source_prompt="a red circle moving right over grass", start=0,
                  end=2, fps=8, strength=1.0, mask_object="the red circle", mask_method="auto", mask_video=None,
                  keep_edges=False,
                  controlnet="", control_scale=1.0, num_frames=16, width=64, height=64, model="demo", seed=1,
                  randomize=False, steps=4, guidance=7.5, scheduler="ddim", clip_length=8, stride=4,
                  weights="flat", negative_prompt="")
    params.update(overrides)
    return params


@needs_demo
def test_edit_anything_changes_only_the_object(server, client):
    from genl.conditions.masks import object_masks
    from genl.video_io import read_video

    job_id, status, _, video, files = client.predict(**edit_anything_job(), api_name="/edit_anything")
    assert 'data-status="done"' in status, status
    result, _ = read_video(video)
    source, _ = read_video(EXAMPLE, max_frames=16, size=(64, 64))
    assert result.shape == source.shape == (16, 64, 64, 3)
    inside = object_masks(source, "the red circle", demo=True).masks
    diff = np.abs(result.astype(float) - source.astype(float)).mean(-1)
    # Outside the mask the source comes back (up to the demo VAE's own round-trip error); inside it changes.
    assert diff[~inside].mean() < diff[inside].mean(), (diff[~inside].mean(), diff[inside].mean())
    settings = next(f for f in files if str(f).endswith(".json"))
    assert '"mask_object": "the red circle"' in open(settings).read()
    assert any(str(f).endswith("masks.mp4") for f in files)  # the mask video is downloadable with the result


def test_edit_anything_needs_an_object(server, client):
    with pytest.raises(AppError, match="Describe the object"):
        client.predict(**edit_anything_job(mask_object="  "), api_name="/edit_anything")


def edge_job(**overrides):
    params = dict(rows=dict(ROWS, data=[[0, 15, "a yellow star moving right over snow", ""]]), unit="frames",
                  control_video=handle_file(str(EXAMPLE)), fps=8, control_type="edges", controlnet="",
                  control_scale=1.0, control_maps=None, second_video=None, third_video=None,
                  num_frames=16, width=64, height=64, model="demo", seed=1, randomize=False, steps=4,
                  guidance=7.5, scheduler="ddim", clip_length=8, stride=4, weights="flat", negative_prompt="")
    params.update(overrides)
    return params


@needs_demo
def test_edge_control_job_runs_or_says_the_controlnet_is_missing(server, client):
    if DEMO_CONTROLNET_DIR.is_dir() and any(DEMO_CONTROLNET_DIR.glob("*.safetensors")):
        job_id, status, _, video, files = client.predict(**edge_job(), api_name="/edge_control")
        assert 'data-status="done"' in status, status
        from genl.video_io import read_video

        assert read_video(video)[0].shape == (16, 64, 64, 3)
        settings = open(next(f for f in files if str(f).endswith(".json"))).read()
        assert '"type": "edges"' in settings and '"pipeline": "tuning_free"' in settings
    # A ControlNet that is not on this machine fails the job with a plain message, not a crash.
    with pytest.raises(AppError, match="(?i)controlnet|not available|download|hub"):
        client.predict(**edge_job(controlnet=str(ROOT / "no-such-controlnet")), api_name="/edge_control")


def test_edge_control_needs_a_reference_video(server, client):
    with pytest.raises(AppError, match="reference video"):
        client.predict(**edge_job(control_video=None), api_name="/edge_control")
