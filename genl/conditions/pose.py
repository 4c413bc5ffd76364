"""Pose maps for pose ControlNets: OpenPose drawing and OpenPose body extraction from any video's frames.

The drawing is the format SD-1.5 pose ControlNets (lllyasviel/control_v11p_sd15_openpose) were trained on,
as controlnet_aux's `open_pose.util.draw_bodypose` makes it: 18 COCO-order body keypoints on black, 17 limbs
as filled ellipses of half-width 4 px in 60 % of their colour, then a 4 px disc per joint in full colour.

Extraction runs controlnet_aux's OpenPose body network (CMU's, weights `body_pose_model.pth` of
lllyasviel/Annotators) on a batch of frames at once and reuses controlnet_aux's own peak finding and limb
association per frame; hands and face (modes `openpose_hand`, `openpose_full`) are added by pose_parts.py. DWPose is not offered: controlnet-aux 0.0.10 runs it through mmpose/mmdet/mmcv, which
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
        draw_body(canvas, person)
    return canvas


def draw_body(canvas: np.ndarray, person) -> np.ndarray:
    """Draw one person's body (18, 2) onto canvas (H, W, 3) uint8, in place (controlnet_aux's draw_bodypose)."""
    height, width = canvas.shape[:2]
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


POSE_MODES = {"openpose": "body", "openpose_hand": "body + hands", "openpose_full": "body + hands + face"}


class OpenPose:
    """OpenPose keypoints of frames, batched: frames (N, H, W, 3) uint8 RGB -> pose maps (N, H, W, 3).

    The body network always runs; with a `hand_model` hands are added, with a `face_model` too the face (the
    networks of controlnet_aux's OpenposeDetector; see pose_parts.py). Built from networks (random weights in
    tests) or loaded with `OpenPose.load(mode=...)`, mode a key of POSE_MODES."""

    def __init__(self, model: torch.nn.Module, batch_size: int = 16, input_height: int = 184,
                 hand_model: torch.nn.Module = None, face_model: torch.nn.Module = None, hand_box: int = 368,
                 hand_scales=(0.5, 1.0, 1.5, 2.0), face_size: int = 384):
        """input_height: frames are scaled to this height for the body network; 184 (368 * 0.5) as controlnet_aux.
        Lower is faster and coarser; outputs are resized to the 184 px grid its post-processing expects.
        hand_box, hand_scales, face_size: the hand and face networks' input sides (controlnet_aux's defaults)."""
        if face_model is not None and hand_model is None:
            raise ValueError("OpenPose's face mode comes with hands: give a hand network too.")
        self.body_mod, _, self.util = _openpose_modules()
        self.model = model.eval()
        self.hand_model = hand_model.eval() if hand_model is not None else None
        self.face_model = face_model.eval() if face_model is not None else None
        self.batch_size = batch_size
        self.input_height = input_height
        self.hand_box, self.hand_scales, self.face_size = hand_box, tuple(hand_scales), face_size

    @property
    def name(self) -> str:
        return "openpose_full" if self.face_model is not None else "openpose_hand" if self.hand_model else "openpose"

    @classmethod
    def load(cls, source: str = DEFAULT_OPENPOSE, device: str = "cpu", dtype=torch.float32, mode: str = "openpose",
             **kw) -> "OpenPose":
        """source: a folder holding body_pose_model.pth (+ hand_pose_model.pth, facenet.pth for the hand and face
        modes), a body_pose_model.pth file, or a hub repo id (offline-aware, with the download hint)."""
        from .pose_parts import FACE_FILE, HAND_FILE, face_network, hand_network

        if mode not in POSE_MODES:
            raise ValueError(f"Unknown OpenPose mode '{mode}'. Choose one of: {', '.join(POSE_MODES)}.")
        _, model_mod, util = _openpose_modules()

        def resolve(filename):  # every file found (or the download hint given) before any network is built
            path = Path(source)
            if path.is_file() and filename == OPENPOSE_FILE:
                return path
            path = (path if path.is_dir() else path.parent) / filename
            if not path.is_file():
                from genl.models import hub_file

                path = Path(hub_file(source, filename))
            return path

        files = [OPENPOSE_FILE] + [HAND_FILE] * (mode != "openpose") + [FACE_FILE] * (mode == "openpose_full")
        paths = {f: resolve(f) for f in files}

        def weights(filename):
            return torch.load(paths[filename], map_location="cpu", weights_only=True)

        def ready(net):
            return net.to(device=device, dtype=dtype)

        body = model_mod.bodypose_model()
        body.load_state_dict(util.transfer(body, weights(OPENPOSE_FILE)))
        hand = face = None
        if HAND_FILE in paths:
            hand = hand_network()
            hand.load_state_dict(util.transfer(hand, weights(HAND_FILE)))
            hand = ready(hand)
        if FACE_FILE in paths:
            face = face_network()
            face.load_state_dict(weights(FACE_FILE))
            face = ready(face)
        return cls(ready(body), hand_model=hand, face_model=face, **kw)

    def to(self, device) -> "OpenPose":
        for net in (self.model, self.hand_model, self.face_model):
            if net is not None:
                net.to(device)
        return self

    @torch.no_grad()
    def _bodies(self, bgr: np.ndarray) -> list:
        """Per BGR frame, controlnet_aux's BodyResults (keypoints in the frame's pixels), the network batched."""
        param = next(self.model.parameters())

        def padded(height):  # as controlnet_aux: scaled to a 184 px (368 * 0.5) tall input, padded to stride 8
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
        bodies = []
        for frame, outputs in zip(bgr, out):
            body.model = _Precomputed(outputs)
            bodies.append(body.format_body_result(*body(frame)))
        return bodies

    def keypoints(self, frames: np.ndarray) -> list[np.ndarray]:
        """Per frame, the bodies found: (P, 18, 2) x, y fractions of the frame, NaN for unseen joints."""
        frames = check_frames(frames, "Pose extraction")
        return [self._body_array(b, *frames.shape[1:3]) for b in self._bodies(np.ascontiguousarray(frames[..., ::-1]))]

    @staticmethod
    def _body_array(bodies, h: int, w: int) -> np.ndarray:
        found = [[(k.x / w, k.y / h) if k is not None else (np.nan, np.nan) for k in b.keypoints] for b in bodies]
        return np.asarray(found, np.float64).reshape(-1, 18, 2)

    def people(self, frames: np.ndarray) -> list[list[dict]]:
        """Per frame, per person: {"body": (18, 2), "left_hand", "right_hand": (21, 2) or None, "face": (K, 2) or
        None}, fractions of the frame, NaN where not found. Hand and face networks run once over every box."""
        from .pose_parts import face_peaks, hand_peaks, to_fractions

        frames = check_frames(frames, "Pose extraction")
        bgr = np.ascontiguousarray(frames[..., ::-1])
        h, w = frames.shape[1:3]
        bodies = self._bodies(bgr)
        people = [[{"body": arr, "left_hand": None, "right_hand": None, "face": None}
                   for arr in self._body_array(b, h, w)] for b in bodies]
        jobs = {"hand": [], "face": []}  # (frame, person, slot, x, y, crop)
        for f, frame_bodies in enumerate(bodies):
            for p, body in enumerate(frame_bodies):
                if self.hand_model is not None:
                    for x, y, size, is_left in self.util.handDetect(body, bgr[f]):
                        jobs["hand"].append((f, p, "left_hand" if is_left else "right_hand", x, y,
                                             bgr[f, y:y + size, x:x + size]))
                box = self.util.faceDetect(body, bgr[f]) if self.face_model is not None else None
                if box is not None:
                    x, y, size = box
                    jobs["face"].append((f, p, "face", x, y, bgr[f, y:y + size, x:x + size]))
        found = {"hand": hand_peaks(self.hand_model, [j[-1] for j in jobs["hand"]], box=self.hand_box,
                                    scales=self.hand_scales, batch_size=self.batch_size) if jobs["hand"] else [],
                 "face": face_peaks(self.face_model, [j[-1] for j in jobs["face"]], size=self.face_size,
                                    batch_size=self.batch_size) if jobs["face"] else []}
        for part in jobs:
            for (f, p, slot, x, y, _), peaks in zip(jobs[part], found[part]):
                if len(peaks):
                    people[f][p][slot] = to_fractions(peaks, x, y, w, h)
        return people

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        frames = check_frames(frames, "Pose extraction")
        if self.hand_model is None:
            return draw_openpose_video(self.keypoints(frames), *frames.shape[1:3])
        from .pose_parts import draw_people

        return np.stack([draw_people(p, *frames.shape[1:3]) for p in self.people(frames)])


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
