"""Pose/depth control maps, the control cache, multi-ControlNet residuals and the stick-figure world.
Offline, tiny random-weight networks built from configs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from genl.conditions.control_cache import ControlCache, preview_strip, save_control_video, uploaded_control
from genl.conditions.depth import DepthAnything
from genl.conditions.pose import COLOURS, LIMBS, LIMB_SHADE, OpenPose, _openpose_modules, draw_openpose
from genl.controlnets import Control, ControlSpec, control_residuals, control_tensor
from genl.demo.figures import FigureSpec, render_figure_clip
from genl.demo.pose_controlnet import seam_frames


def _pose() -> np.ndarray:
    kp = np.full((18, 2), np.nan)
    kp[1], kp[2], kp[3], kp[5] = (0.5, 0.3), (0.3, 0.3), (0.3, 0.7), (0.7, 0.3)
    return kp


def test_openpose_drawing_colours_and_controlnet_aux_match():
    kp = _pose()
    canvas = draw_openpose(kp, 128, 160)
    assert canvas.shape == (128, 160, 3) and canvas.dtype == np.uint8
    for k, (a, b) in enumerate(LIMBS):
        if np.isnan(kp[[a, b]]).any():
            continue
        mid = (kp[a] + kp[b]) / 2
        x, y = int(mid[0] * 160), int(mid[1] * 128)
        assert tuple(canvas[y, x]) == tuple(int(c * LIMB_SHADE) for c in COLOURS[k]), k
    for j in (1, 2, 3, 5):  # joints on top, full colour
        assert tuple(canvas[int(kp[j, 1] * 128), int(kp[j, 0] * 160)]) == COLOURS[j]
    assert canvas[5, 5].sum() == 0 and canvas[120, 80].sum() == 0  # black elsewhere, no limb to unseen joints
    # byte-identical to controlnet_aux's own drawing
    body, _, util = _openpose_modules()
    points = [None if np.isnan(p).any() else body.Keypoint(p[0], p[1]) for p in kp]
    assert (util.draw_bodypose(np.zeros((128, 160, 3), np.uint8), points) == canvas).all()


class _TinyBodyNet(torch.nn.Module):
    """The OpenPose body network's interface (PAFs 38 + heatmaps 19 at stride 8), random weights."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 57, 8, stride=8)

    def forward(self, x):
        y = torch.sigmoid(self.conv(x))
        return y[:, :38], y[:, 38:] * 0.5


def test_openpose_extraction_tiny_network_maps_every_frame():
    frames = np.random.default_rng(0).integers(0, 255, (3, 48, 64, 3), dtype=np.uint8)
    det = OpenPose(_TinyBodyNet(), batch_size=2, input_height=48)
    people = det.keypoints(frames)
    assert len(people) == 3 and all(p.shape[1:] == (18, 2) for p in people)
    maps = det(frames)
    assert maps.shape == frames.shape and maps.dtype == np.uint8
    with pytest.raises(ValueError):
        det(frames.astype(np.float32))


def test_depth_anything_tiny_maps_every_frame():
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation

    torch.manual_seed(0)
    cfg = DepthAnythingConfig(
        backbone_config={"model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2,
                         "intermediate_size": 64, "image_size": 28, "patch_size": 14,
                         "out_indices": [1, 2, 3, 4], "reshape_hidden_states": False},
        reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 16, 32], fusion_hidden_size=16, head_hidden_size=8)
    det = DepthAnything(DepthAnythingForDepthEstimation(cfg), input_size=28, batch_size=2)
    frames = np.random.default_rng(1).integers(0, 255, (3, 40, 56, 3), dtype=np.uint8)
    maps = det(frames)
    assert maps.shape == frames.shape and maps.dtype == np.uint8
    assert maps.min() == 0 and maps.max() == 255  # scaled over the video
    assert (maps[..., 0] == maps[..., 2]).all()


def test_control_cache_preview_and_upload(tmp_path):
    frames = np.random.default_rng(2).integers(0, 255, (4, 32, 48, 3), dtype=np.uint8)
    cache, calls = ControlCache(tmp_path / "cache"), []

    def extract(f):
        calls.append(1)
        return 255 - f

    a, hit_a = cache.maps(frames, "inv", {"k": 1}, extract)
    b, hit_b = cache.maps(frames, "inv", {"k": 1}, extract)
    c, hit_c = cache.maps(frames, "inv", {"k": 2}, extract)  # other settings: extracted again
    assert (hit_a, hit_b, hit_c) == (False, True, False) and len(calls) == 2 and (a == b).all()
    strip = preview_strip(frames, a, count=3, height=16)
    assert strip.shape == (32, 3 * 24, 3)
    path = save_control_video(a, tmp_path / "control.mp4")
    back = uploaded_control(path, 3, 32, 48)
    assert back.shape == (3, 32, 48, 3)
    with pytest.raises(ValueError, match="frames"):
        uploaded_control(path, 9, 32, 48)


@pytest.fixture(scope="module")
def tiny_controlnets():
    from diffusers import ControlNetModel

    from tiny import tiny_unet

    unet = tiny_unet()
    nets = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16)).eval()
        for p in net.parameters():  # from_unet zeroes the output convs; random ones make residuals visible
            if (p == 0).all():
                torch.nn.init.normal_(p, std=0.02)
        nets.append(net)
    return nets


@torch.no_grad()
def test_multi_controlnet_sum_schedule_and_per_frame_maps(tiny_controlnets):
    a_net, b_net = tiny_controlnets
    g = torch.Generator().manual_seed(0)
    num_frames = 5
    maps = [torch.rand(num_frames, 3, 32, 32, generator=g) for _ in range(2)]
    latents, states = torch.randn(3, 4, 16, 16, generator=g), torch.randn(3, 16, 32, generator=g)
    rows, t = torch.tensor([1, 2, 3]), torch.tensor(500)
    pose = Control(a_net, maps[0], strength=0.8)
    depth = Control(b_net, maps[1], strength=0.5, start=0.5, end=1.0)

    def res(controls, step=0, n=4, r=rows, lat=latents, st=states):
        return control_residuals(controls, lat, t, step, n, st, r)

    # several ControlNets: residuals summed (diffusers' MultiControlNetModel)
    both, only_a, only_b = res([pose, depth], 2), res([pose], 2), res([depth], 2)
    for s, x, y in zip(both[0] + [both[1]], only_a[0] + [only_a[1]], only_b[0] + [only_b[1]]):
        assert torch.allclose(s, x + y, atol=1e-6)
    # start/end: depth acts from step 2 of 4 (i/n >= 0.5) on, so step 1 equals pose alone; pose ends at 0.5
    early = res([pose, depth], 1)
    assert all(torch.equal(x, y) for x, y in zip(early[0], res([pose], 1)[0]))
    assert res([Control(a_net, maps[0], end=0.5)], 2) is None and res([Control(a_net, maps[0], end=0.5)], 1)
    assert res([Control(a_net, maps[0], strength=0.0)], 0) is None
    # strength scales residuals
    half = res([Control(a_net, maps[0], strength=0.4)], 2)
    assert torch.allclose(half[1] * 2, only_a[1], atol=1e-6)
    # each row gets its own frame's map: changing frame 2's map changes only the row showing frame 2
    changed = maps[0].clone()
    changed[2] = 1 - changed[2]
    other = res([Control(a_net, changed, strength=0.8)], 2)
    diff = (other[1] - only_a[1]).flatten(1).abs().amax(1)
    assert diff[1] > 0 and diff[0] == 0 and diff[2] == 0
    with pytest.raises(ValueError):
        Control(a_net, maps[0], start=0.6, end=0.4)
    with pytest.raises(ValueError):
        ControlSpec(type="normals").validate()
    with pytest.raises(ValueError, match="frames"):
        control_tensor(np.zeros((4, 8, 8, 3), np.uint8), 5)


def test_figures_render_with_ground_truth_keypoints():
    from genl.demo.world import PALETTE

    spec = FigureSpec("red", "walk", "grass", x0=0.4, y0=0.55, height=0.6, thickness=0.05, seed=3)
    frames, poses = render_figure_clip(spec, 8, 128)
    assert frames.shape == (8, 128, 128, 3) and poses.shape == (8, 18, 2)
    assert ((poses >= 0) & (poses <= 1)).all()
    red = np.array(PALETTE["red"])
    for f, kp in zip(frames, poses):
        for a, b in ((1, 8), (8, 9), (2, 3)):  # torso, thigh, upper arm: limb midpoints are the figure's colour
            x, y = ((kp[a] + kp[b]) / 2 * 128).astype(int)
            assert np.abs(f[y, x].astype(int) - red).max() < 20
    assert poses[-1, 1, 0] - poses[0, 1, 0] > 0.15  # walking right
    wave = render_figure_clip(FigureSpec("blue", "wave", "sky"), 8, 64)[1]
    assert wave[:, 4, 1].max() < wave[:, 0, 1].min()  # right wrist above the head
    assert np.ptp(wave[:, 4, 0]) > 0.02 and np.ptp(wave[:, 7], axis=0).max() < 1e-9  # it waves; the left arm hangs still
    jump = render_figure_clip(FigureSpec("yellow", "jump", "sand", y0=0.6), 16, 64)[1]
    assert jump[:, 1, 1].min() < jump[0, 1, 1] - 0.05  # the neck rises in the air


def test_seam_frames():
    assert seam_frames(32, 16, 8).tolist() == [7, 8, 15, 16, 23, 24]
