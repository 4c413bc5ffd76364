"""The demo model's edge ControlNet: edge maps, offline loading, and that control places the object.

Placement measured with `python -m genl.demo.controlnet evaluate` (20 steps, guidance 7.5, scale 1.0; see
assets/demo-model/README.md): the generated object's centroid lies within 0.1 of the source's in 0.825 of
40 frames with the ControlNet (H100) vs 0.025 without; the frame used here (k=0) was a hit on GPU and CPU."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from genl.conditions.edges import edge_map
from genl.models import DEMO_NAME, demo_available
from genl.demo.world import ClipSpec, caption, clip_states, random_clip, render_clip, states_alpha
from genl.demo.world_parse import parse_frame

CONTROLNET_DIR = "assets/demo-controlnet"


def test_edge_map_format_and_boundary():
    spec = ClipSpec("red", "square", "still", "sky", x0=0.3, y0=0.5, size=0.3, seed=0)
    frames = render_clip(spec, 2, 128)
    edges = edge_map(frames)
    assert edges.shape == frames.shape and edges.dtype == np.uint8
    assert set(np.unique(edges)) <= {0, 255}
    assert (edges[..., 0] == edges[..., 1]).all() and (edges[..., 0] == edges[..., 2]).all()
    # edges lie on the object's boundary: where its coverage is partial or changes between neighbours
    alpha = states_alpha(clip_states(spec, 1), 128)[0]
    grad = np.maximum(np.abs(np.diff(alpha, axis=0, prepend=0)), np.abs(np.diff(alpha, axis=1, prepend=0)))
    near = np.zeros_like(alpha, bool)
    for dy in (-2, -1, 0, 1, 2):
        for dx in (-2, -1, 0, 1, 2):
            near |= np.roll(grad > 0.2, (dy, dx), axis=(0, 1))
    on = edges[0, ..., 0] > 0
    ys, xs = np.nonzero(on)
    ay, ax = np.nonzero(alpha > 0.5)
    assert abs(xs.min() - ax.min()) <= 2 and abs(xs.max() - ax.max()) <= 2  # the outline spans the object
    assert abs(ys.min() - ay.min()) <= 2 and abs(ys.max() - ay.max()) <= 2
    assert (on & near).sum() > 0.8 * on.sum()  # and little else (the sky is smooth)
    assert edge_map(frames[0]).shape == frames[0].shape
    with pytest.raises(ValueError):
        edge_map(frames.astype(np.float32))


needs_assets = pytest.mark.skipif(not demo_available(), reason="assets/demo-model is missing")


@pytest.fixture(scope="module")
def controlnet():
    from diffusers import ControlNetModel

    return ControlNetModel.from_pretrained(CONTROLNET_DIR, local_files_only=True)


@needs_assets
def test_controlnet_loads_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from diffusers import ControlNetModel

    model = ControlNetModel.from_pretrained(CONTROLNET_DIR, local_files_only=True)
    assert model.config.conditioning_channels == 3
    assert len(model.config.conditioning_embedding_out_channels) == 4  # 3 stride-2 convs: 128 px -> 16 latents
    assert model.config.cross_attention_dim == 128
    assert max(p.stat().st_size for p in Path(CONTROLNET_DIR).iterdir()) < 16 * 2**20


@needs_assets
def test_edges_place_the_object(controlnet, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from diffusers import StableDiffusionControlNetPipeline
    from PIL import Image

    from genl.models import ModelManager

    pipe = ModelManager().get("tuning_free", DEMO_NAME, device="cpu")
    comps = {k: getattr(pipe, k) for k in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}
    cn_pipe = StableDiffusionControlNetPipeline(**comps, controlnet=controlnet, safety_checker=None,
                                                feature_extractor=None, requires_safety_checker=False)
    cn_pipe.set_progress_bar_config(disable=True)
    # frame k=0 of `evaluate` (random_clip(10_000), generator seed 0): the measured setting
    spec = random_clip(10_000)
    frame = render_clip(spec, 1, 128)[0]
    src = parse_frame(frame)
    out = cn_pipe(caption(spec), image=Image.fromarray(edge_map(frame)), height=128, width=128,
                  num_inference_steps=20, guidance_scale=7.5, generator=torch.Generator().manual_seed(0),
                  output_type="np").images[0]
    got = parse_frame(np.clip(np.rint(out * 255), 0, 255).astype(np.uint8))
    assert got.x is not None
    assert math.hypot(got.x - src.x, got.y - src.y) < 0.1, (src, got)
