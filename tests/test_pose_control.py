"""Pose / depth / edge control end to end: settings (new list and old fields), several ControlNets with
start/end inside the tuning-free pipeline, a pose-following job through run_job, the control preview kind."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from genl.api import run_job
from genl.controlnets import Control
from genl.models import DEMO_POSE_CONTROLNET_DIR, demo_available
from genl.settings import (CoDenoiseSettings, ControlPreviewSettings, GenerateSettings, control_specs,
                           settings_from_dict)
from genl.timeline import Timeline

FIGURE = Path(__file__).resolve().parent.parent / "assets" / "examples" / "stick_figure_walks.mp4"
needs_pose_demo = pytest.mark.skipif(not (demo_available() and (DEMO_POSE_CONTROLNET_DIR / "config.json").exists()),
                                     reason="the demo model or demo pose ControlNet is missing")


def test_example_is_small():
    assert FIGURE.stat().st_size < 300_000


def test_old_settings_json_loads_as_one_edges_control():
    old = {"kind": "generate", "prompt": "a red circle", "pipeline": "tuning_free", "control": "edges",
           "control_video": "ref.mp4", "controlnet": "demo", "control_scale": 0.7}
    settings = settings_from_dict(json.loads(json.dumps(old)))
    (spec,) = control_specs(settings)
    assert (spec.type, spec.model, spec.strength, spec.start, spec.end) == ("edges", "demo", 0.7, 0.0, 1.0)
    again = settings_from_dict(settings.to_dict())  # new form round-trips too
    assert again.controls == [] and again.control == "edges"


def test_controls_are_validated_in_plain_words():
    base = dict(prompt="a red circle", pipeline="tuning_free", control_video="ref.mp4")
    with pytest.raises(ValueError, match="start must come before its end"):
        GenerateSettings(**base, controls=[{"type": "pose", "start": 0.8, "end": 0.2}]).validate()
    with pytest.raises(ValueError, match="Unknown control type"):
        GenerateSettings(**base, controls=[{"type": "normals"}]).validate()
    with pytest.raises(ValueError, match="tuning-free"):
        GenerateSettings(**dict(base, pipeline="animatediff"), controls=[{"type": "pose"}]).validate()
    with pytest.raises(ValueError, match="reference video"):
        GenerateSettings(**dict(base, control_video=""), controls=[{"type": "pose"}]).validate()


def _controlnet(unet, seed):
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16))
    for param in net.parameters():  # a fresh ControlNet's zero convs would make it a no-op
        if param.abs().max() == 0:
            torch.nn.init.normal_(param, std=0.2)
    return net


def test_several_controlnets_with_start_end_in_the_pipeline(tiny_models):
    from genl.pipelines import LongTuningFreePipeline
    from tiny import tiny_components

    comps = tiny_components()
    pipe = LongTuningFreePipeline(**comps)
    pose_net, depth_net = _controlnet(comps["unet"], 0), _controlnet(comps["unet"], 1)
    rng = np.random.default_rng(0)
    maps = torch.from_numpy(rng.random((12, 3, 32, 32)).astype(np.float32))
    kw = dict(num_frames=12, height=32, width=32, num_inference_steps=2, seed=0,
              codenoise=CoDenoiseSettings(clip_length=8, stride=4))
    tl = Timeline.parse("a red square")

    def run(*controls):
        return pipe(tl, controls=list(controls), **kw).latents

    plain = run()
    pose = run(Control(pose_net, maps))
    both = run(Control(pose_net, maps), Control(depth_net, maps.flip(-1)))
    assert (pose - plain).abs().max() > 1e-3 and (both - pose).abs().max() > 1e-3
    # a control active in no step (start at the last step's share, 2 steps: 1/2 <= start) acts only in step 2
    late = run(Control(pose_net, maps, start=0.5, end=1.0))
    assert (late - plain).abs().max() > 1e-4 and (late - pose).abs().max() > 1e-4
    # strength 0 is no control at all; a control whose window is step 1 only differs from one on step 2 only
    torch.testing.assert_close(run(Control(pose_net, maps, strength=0.0)), plain)
    early = run(Control(pose_net, maps, start=0.0, end=0.5))
    assert (early - late).abs().max() > 1e-4
    with pytest.raises(ValueError, match="12"):
        run(Control(pose_net, maps[:6]))


@needs_pose_demo
def test_generate_following_a_pose_video_through_run_job(tmp_path, model_manager):
    settings = GenerateSettings(prompt="a red figure walking over grass", num_frames=8, width=64, height=64, steps=2,
                                model="demo", device="cpu", pipeline="tuning_free", fps=8.0,
                                control_video=str(FIGURE), controls=[{"type": "pose", "end": 0.5}],
                                codenoise=CoDenoiseSettings(clip_length=4, stride=2))
    out = run_job(settings, tmp_path / "job", models=model_manager, save_frames=False)
    assert out["num_frames"] == 8
    assert any("demo world's tiny pose estimator" in n for n in out["notices"]), out["notices"]
    again = run_job(settings, tmp_path / "job2", models=model_manager, save_frames=False)
    assert any("(cached)" in n for n in again["notices"])  # extraction ran once per (video, detector, settings)
    stored = json.loads(Path(out["settings"]).read_text())
    assert stored["controls"][0]["type"] == "pose"


@needs_pose_demo
def test_control_preview_kind_gives_strip_and_control_video(tmp_path, model_manager):
    from genl.video_io import read_video

    settings = ControlPreviewSettings(video=str(FIGURE), type="pose", fps=8.0, samples=3)
    out = run_job(settings, tmp_path / "work" / "preview", models=model_manager)
    maps, _ = read_video(out["control_video"])
    assert len(maps) == out["num_frames"] == 32
    assert "tiny pose estimator" in out["note"]
    from PIL import Image

    strip = np.asarray(Image.open(out["strip"]))
    assert strip.shape[0] == 2 * 128 and strip.shape[1] == 3 * 128
    with pytest.raises(ValueError, match="detector"):
        run_job(ControlPreviewSettings(video=str(FIGURE), type="pose", detector="dwpose"), tmp_path / "x")


def test_cli_control_flags():
    from genl.cli import build_parser, settings_from_args

    args = build_parser().parse_args(["generate", "--prompt", "a figure", "--pipeline", "tuning_free",
                                      "--control", "pose", "--control", "depth", "--control-video", "ref.mp4",
                                      "--control-strength", "0.8", "--control-strength", "0.5",
                                      "--control-end", "0.6"])
    settings = settings_from_args(args)
    specs = control_specs(settings)
    assert [(s.type, s.strength, s.end) for s in specs] == [("pose", 0.8, 0.6), ("depth", 0.5, 0.6)]
