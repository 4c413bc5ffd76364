"""Issue 13.4: edge control with two prompts was reported to give pure-noise frames just after the prompt change
(the live preview showed them too). This runs that setting the way the Pose / edge tab submits it (form values ->
forms.pose_control_settings -> the generate kind -> tuning-free pipeline with the demo edge ControlNet) on the demo
model at its own 128 px, and checks every frame near the change, and every step's x0 preview, looks like its
neighbours rather than noise."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from genl.models import demo_available

pytestmark = pytest.mark.skipif(not demo_available(), reason="the bundled demo model is missing")


def detail(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference of horizontally adjacent pixels per frame: ~3-10 for the demo world's flat
    shapes, 40+ for Gaussian noise decoded by its VAE."""
    return np.abs(np.diff(frames.astype(np.float32), axis=2)).mean(axis=(1, 2, 3))


def test_edge_control_frames_at_a_prompt_change_are_not_noise(tmp_path):
    from genl import forms
    from genl.api import run_job
    from genl.demo.world import LongVideoSpec, Segment, render_long_video
    from genl.video_io import read_video, write_mp4

    n = 16
    ref = write_mp4(render_long_video(LongVideoSpec((Segment(0, n - 1, "red", "circle", "right", "grass"),),
                                                    x0=0.3, y0=0.55, size=0.25, seed=7), size=128),
                    tmp_path / "ref.mp4", fps=8)
    values = dict(control_video=str(ref), control_type="edges", controlnet="", control_scale=1.0, control_start=0.0,
                  control_end=1.0, second_type="none", fps=8, num_frames=n, width=128, height=128, model="demo",
                  seed=0, steps=3, guidance=7.5, scheduler="ddim", clip_length=8, stride=4, weights="flat",
                  prompt="0-7: a red circle moving right over grass | 8-15: a blue square moving right over sand")
    settings = forms.pose_control_settings(values)
    settings.device = "cpu"
    x0s = []
    out = run_job(settings, tmp_path / "job", save_frames=False, fallback_to_demo=False,
                  progress=lambda ev: x0s.append(ev.get("x0")))
    frames, _ = read_video(out["video"])
    assert len(frames) == n
    d = detail(frames)
    near = d[8 - 4:8 + 4]  # the S frames either side of the prompt change
    assert np.isfinite(d).all() and near.max() < 25 and near.max() < 3 * np.median(d), d.round(1).tolist()
    latents = [x for x in x0s if x is not None]
    assert latents and all(torch.isfinite(x).all() for x in latents)
    last = latents[-1][0].float()  # (C, F, h, w): the preview's x0 at the last step
    per_frame = last.std(dim=(0, 2, 3))
    assert per_frame[4:12].max() < 3 * per_frame.median(), per_frame.tolist()
