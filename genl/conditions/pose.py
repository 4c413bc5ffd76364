"""Pose maps for pose ControlNets: OpenPose drawing and OpenPose body extraction from any video's frames.

The drawing is the format SD-1.5 pose ControlNets (lllyasviel/control_v11p_sd15_openpose) were trained on,
as controlnet_aux's `open_pose.util.draw_bodypose` makes it: 18 COCO-order body keypoints on black, 17 limbs
as filled ellipses of half-width 4 px in 60 % of their colour, then a 4 px disc per joint in full colour.

Extraction runs controlnet_aux's OpenPose body network (CMU's, weights `body_pose_model.pth` of
lllyasviel/Annotators) on a batch of frames at once and reuses controlnet_aux's own peak finding and limb
association per frame. DWPose is not offered: controlnet-aux 0.0.10 runs it through mmpose/mmdet/mmcv, which
need compiling (`mim install`), so it does not install from PyPI cleanly.
"""
from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import torch

# OpenPose / COCO-18 joint order
JOINTS = ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "r_hip",
          "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear")
# limbs as (joint a, joint b), 0-based; the order fixes each limb's colour
LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
         (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
COLOURS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
           (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
           (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85))  # limb k and joint k share COLOURS[k]
STICK_WIDTH = 4
LIMB_SHADE = 0.6

DEFAULT_OPENPOSE = "lllyasviel/Annotators"
OPENPOSE_FILE = "body_pose_model.pth"


def draw_openpose(poses, height: int, width: int) -> np.ndarray:
    """One pose map (H, W, 3) uint8 RGB for the people of one frame.

    poses: (P, 18, 2) or (18, 2) keypoints, x and y as fractions of the width and height (0..1); NaN marks a
    joint that is not seen, and limbs touching it are left out, as OpenPose does.
    """
    poses = np.asarray(poses, np.float64)
    if poses.ndim == 2:
        poses = poses[None]
    if poses.ndim != 3 or poses.shape[1:] != (18, 2):
        raise ValueError(f"Pose keypoints must be shaped (people, 18, 2), got {poses.shape}.")
    canvas = np.zeros((height, width, 3), np.uint8)
    for person in poses:
        for (a, b), colour in zip(LIMBS, COLOURS):
            pa, pb = person[a], person[b]
            if np.isnan(pa).any() or np.isnan(pb).any():
                continue
            # controlnet_aux's arithmetic exactly (its X is the row, Y the column)
            ys, xs = np.array([pa[0], pb[0]]) * float(width), np.array([pa[1], pb[1]]) * float(height)
            length = math.hypot(xs[0] - xs[1], ys[0] - ys[1])
            angle = math.degrees(math.atan2(xs[0] - xs[1], ys[0] - ys[1]))
            polygon = cv2.ellipse2Poly((int(ys.mean()), int(xs.mean())), (int(length / 2), STICK_WIDTH),
                                       int(angle), 0, 360, 1)
            cv2.fillConvexPoly(canvas, polygon, [int(float(c) * LIMB_SHADE) for c in colour])
        for point, colour in zip(person, COLOURS):
            if np.isnan(point).any():
                continue
            cv2.circle(canvas, (int(point[0] * width), int(point[1] * height)), 4, colour, thickness=-1)
    return canvas


def draw_openpose_video(keypoints, height: int, width: int) -> np.ndarray:
    """Pose maps (N, H, W, 3) uint8 of a video: keypoints[i] holds frame i's people as for `draw_openpose`."""
    return np.stack([draw_openpose(k if len(k) else np.zeros((0, 18, 2)), height, width) for k in keypoints])


# ---------------------------------------------------------------- extraction

def _openpose_modules():
    """controlnet_aux's OpenPose body code (`open_pose.body`, `open_pose.model`, `open_pose.util`).

    controlnet_aux/__init__.py imports every detector it ships (MiDaS, Zoe, SAM, ...), which needs timm and a
    torchvision matching torch; the OpenPose body network needs neither. So its two package __init__ files
    are skipped: the packages are registered empty and only the body modules are imported."""
    if "controlnet_aux.open_pose" not in sys.modules:
        spec = importlib.util.find_spec("controlnet_aux")
        if spec is None or not spec.submodule_search_locations:
            raise ValueError("Pose extraction needs the controlnet-aux package: "
                             "pip install --no-deps controlnet-aux==0.0.10 scipy")
        root = Path(list(spec.submodule_search_locations)[0])
        for name, folder in (("controlnet_aux", root), ("controlnet_aux.open_pose", root / "open_pose")):
            pkg = types.ModuleType(name)
            pkg.__path__ = [str(folder)]
            pkg.__package__ = name
            sys.modules.setdefault(name, pkg)
    util = importlib.import_module("controlnet_aux.open_pose.util")  # first, as its package does: util <-> body
    return (importlib.import_module("controlnet_aux.open_pose.body"),
            importlib.import_module("controlnet_aux.open_pose.model"), util)


class _Precomputed(torch.nn.Module):
    """Stands in for the body network inside controlnet_aux's `Body.__call__`, handing back outputs already
    computed for the whole batch, so its per-frame post-processing runs unchanged."""

    def __init__(self, outputs):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()), requires_grad=False)  # Body reads the device from it
        self.outputs = outputs

    def forward(self, data):
        return self.outputs


class OpenPose:
    """OpenPose body keypoints of frames, batched: frames (N, H, W, 3) uint8 RGB -> pose maps (N, H, W, 3).

    Built from a `bodypose_model` (random weights in tests) or loaded with `OpenPose.load`."""

    name = "openpose"

    def __init__(self, model: torch.nn.Module, batch_size: int = 16, input_height: int = 184):
        """input_height: frames are scaled to this height for the network; 184 (368 * 0.5) as controlnet_aux.
        Lower is faster and coarser; outputs are resized to the 184 px grid its post-processing expects."""
        self.body_mod, _, self.util = _openpose_modules()
        self.model = model.eval()
        self.batch_size = batch_size
        self.input_height = input_height

    @classmethod
    def load(cls, source: str = DEFAULT_OPENPOSE, device: str = "cpu", dtype=torch.float32, **kw) -> "OpenPose":
        """source: a folder or file holding body_pose_model.pth, or a hub repo id (offline-aware)."""
        from genl.models import hub_file

        _, model_mod, util = _openpose_modules()
        path = Path(source)
        if path.is_dir():
            path = path / OPENPOSE_FILE
        if not path.is_file():
            path = Path(hub_file(source, OPENPOSE_FILE))
        model = model_mod.bodypose_model()
        model.load_state_dict(util.transfer(model, torch.load(path, map_location="cpu", weights_only=True)))
        return cls(model.to(device=device, dtype=dtype), **kw)

    def to(self, device) -> "OpenPose":
        self.model.to(device)
        return self

    @torch.no_grad()
    def keypoints(self, frames: np.ndarray) -> list[np.ndarray]:
        """Per frame, the people found: (P, 18, 2) x, y fractions of the frame, NaN for unseen joints."""
        frames = check_frames(frames, "Pose extraction")
        param = next(self.model.parameters())
        # as controlnet_aux: BGR, the image scaled to a 184 px (368 * 0.5) tall input, padded to stride 8
        bgr = np.ascontiguousarray(frames[..., ::-1])

        def padded(height):
            scale = height / bgr.shape[1]
            return np.stack([self.util.padRightDownCorner(self.util.smart_resize_k(f, fx=scale, fy=scale), 8,
                                                          128)[0] for f in bgr])

        batch = padded(self.input_height).astype(np.float32) / 256 - 0.5
        grid = padded(184).shape[1:3] if self.input_height != 184 else batch.shape[1:3]
        grid = (grid[0] // 8, grid[1] // 8)
        out = []
        for i in range(0, len(batch), self.batch_size):
            x = torch.from_numpy(batch[i:i + self.batch_size]).permute(0, 3, 1, 2).to(param.device, param.dtype)
            pafs, heat = (torch.nn.functional.interpolate(o.float(), size=grid, mode="bilinear")
                          if o.shape[-2:] != grid else o.float() for o in self.model(x))
            out += [(pafs[j:j + 1].cpu(), heat[j:j + 1].cpu()) for j in range(len(x))]
        body = self.body_mod.Body.__new__(self.body_mod.Body)
        h, w = frames.shape[1:3]
        people = []
        for frame, outputs in zip(bgr, out):
            body.model = _Precomputed(outputs)
            candidate, subset = body(frame)
            found = []
            for person in body.format_body_result(candidate, subset):
                found.append([(k.x / w, k.y / h) if k is not None else (np.nan, np.nan) for k in person.keypoints])
            people.append(np.asarray(found, np.float64).reshape(-1, 18, 2))
        return people

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        frames = check_frames(frames, "Pose extraction")
        return draw_openpose_video(self.keypoints(frames), *frames.shape[1:3])


def check_frames(frames, what: str) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{what} needs RGB frames shaped (frames, height, width, 3), got {frames.shape}.")
    if frames.dtype != np.uint8:
        raise ValueError(f"{what} needs 8-bit frames (uint8, 0..255), got {frames.dtype}.")
    if len(frames) == 0:
        raise ValueError(f"{what} got a video with no frames.")
    return frames
