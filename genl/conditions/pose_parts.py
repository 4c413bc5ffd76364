"""OpenPose hands and face on top of the body: their drawing in the OpenPose format and their networks run batched.

Drawing matches controlnet_aux's `open_pose.util.draw_handpose` / `draw_facepose` byte for byte: per hand 20 bones
as 2 px lines in hues evenly spaced round the HSV wheel, then a 4 px blue disc per keypoint; per face a 3 px white
disc per landmark. A keypoint whose pixel column or row rounds to 0 is not drawn (that is how OpenPose marks a
missing one); here NaN marks a missing one too.

Extraction follows controlnet_aux's `OpenposeDetector.detect_hands` / `detect_face`: hand and face boxes come from
the body keypoints (`util.handDetect`, `util.faceDetect`), each box is cut from the frame and the networks run on
every box of every frame at once (all boxes are resized to one square size per scale, so they batch). The hand
peak search is `open_pose.hand.Hand.__call__`'s, with OpenCV's connected components in place of scikit-image's
`label` (the only thing hand.py needs scikit-image for). The face network is `open_pose.face.FaceNet`; face.py
imports torchvision for two unused module constants, so where torchvision is missing or broken (PyPI's wheel
does not load against the CPU torch build) it is imported with a placeholder torchvision that only holds them.
"""
from __future__ import annotations

import importlib
import os
import sys
import types
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch
import torch.nn.functional as F

HAND_BONES = ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11), (11, 12),
              (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20))
HAND_POINTS = 21
HAND_FILE = "hand_pose_model.pth"
FACE_FILE = "facenet.pth"
HAND_BOX = 368  # the hand network's input side at scale 1, as controlnet_aux
HAND_SCALES = (0.5, 1.0, 1.5, 2.0)
HAND_GRID = 128  # the hand heatmaps are averaged over scales on this square grid
FACE_SIZE = 384
_EPS = 0.01


def _hsv(h: float) -> tuple:
    """matplotlib.colors.hsv_to_rgb([h, 1, 1]) * 255, with its arithmetic (so colours round as in OpenPose)."""
    i = int(h * 6.0)
    f = h * 6.0 - i
    p, q, t, v = 0.0, 1.0 - f, 1.0 - (1.0 - f), 1.0
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i % 6]
    return (r * 255, g * 255, b * 255)


HAND_COLOURS = tuple(_hsv(k / float(len(HAND_BONES))) for k in range(len(HAND_BONES)))


def _pixel(point, width: int, height: int):
    """(x, y) in pixels as OpenPose rounds it, or None for a missing keypoint."""
    if point is None or np.isnan(point).any():
        return None
    x, y = int(point[0] * width), int(point[1] * height)
    return (x, y) if x > _EPS and y > _EPS else None


def draw_hand(canvas: np.ndarray, hand) -> np.ndarray:
    """Draw one hand (21, 2) (x, y fractions; NaN for missing) onto canvas (H, W, 3) uint8, in place."""
    if hand is None or len(hand) == 0:
        return canvas
    height, width = canvas.shape[:2]
    for (a, b), colour in zip(HAND_BONES, HAND_COLOURS):
        pa, pb = _pixel(hand[a], width, height), _pixel(hand[b], width, height)
        if pa is not None and pb is not None:
            cv2.line(canvas, pa, pb, colour, thickness=2)
    for point in hand:
        p = _pixel(point, width, height)
        if p is not None:
            cv2.circle(canvas, p, 4, (0, 0, 255), thickness=-1)
    return canvas


def draw_face(canvas: np.ndarray, face) -> np.ndarray:
    """Draw face landmarks (K, 2) onto canvas (H, W, 3) uint8, in place."""
    if face is None or len(face) == 0:
        return canvas
    height, width = canvas.shape[:2]
    for point in face:
        p = _pixel(point, width, height)
        if p is not None:
            cv2.circle(canvas, p, 3, (255, 255, 255), thickness=-1)
    return canvas


def draw_people(people, height: int, width: int) -> np.ndarray:
    """One pose map of a frame's people, each a dict with 'body' (18, 2) and optional 'left_hand', 'right_hand'
    (21, 2) and 'face' (K, 2); drawn person by person as controlnet_aux's `draw_poses` does."""
    from .pose import draw_body

    canvas = np.zeros((height, width, 3), np.uint8)
    for person in people:
        draw_body(canvas, np.asarray(person["body"], np.float64))
        draw_hand(canvas, person.get("left_hand"))
        draw_hand(canvas, person.get("right_hand"))
        draw_face(canvas, person.get("face"))
    return canvas


# ---------------------------------------------------------------- networks

def hand_network():
    """controlnet_aux's OpenPose hand network (CMU's architecture), untrained."""
    from .pose import _openpose_modules

    return _openpose_modules()[1].handpose_model()


def face_module():
    """controlnet_aux's `open_pose.face` (FaceNet and the face peak search)."""
    from .pose import _openpose_modules

    _openpose_modules()
    if "controlnet_aux.open_pose.face" in sys.modules:
        return sys.modules["controlnet_aux.open_pose.face"]
    try:
        importlib.import_module("torchvision.transforms")
        return importlib.import_module("controlnet_aux.open_pose.face")
    except Exception:  # missing, or a wheel built for another torch (RuntimeError on import)
        pass
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k == "torchvision" or k.startswith("torchvision.")}
    vision, transforms = types.ModuleType("torchvision"), types.ModuleType("torchvision.transforms")
    transforms.ToTensor = transforms.ToPILImage = object  # face.py only instantiates them, never calls them
    vision.transforms = transforms
    sys.modules.update({"torchvision": vision, "torchvision.transforms": transforms})
    try:
        return importlib.import_module("controlnet_aux.open_pose.face")
    finally:
        for k in ("torchvision", "torchvision.transforms"):
            sys.modules.pop(k, None)
        sys.modules.update(saved)


def face_network():
    """controlnet_aux's OpenPose face network (FaceNet), untrained."""
    return face_module().FaceNet()


def _run(net, inputs: np.ndarray, batch_size: int):
    """The network on (N, h, w, 3) float32 inputs in batches; each output as a CPU float32 tensor."""
    param = next(net.parameters())
    outs = []
    for i in range(0, len(inputs), batch_size):
        x = torch.from_numpy(inputs[i:i + batch_size]).permute(0, 3, 1, 2).to(param.device, param.dtype)
        with torch.no_grad():
            y = net(x)
        outs.append(y[-1] if isinstance(y, (list, tuple)) else y)
    return torch.cat(outs).float().cpu()


def hand_peaks(net, crops, *, box: int = HAND_BOX, scales=HAND_SCALES, batch_size: int = 16) -> list[np.ndarray]:
    """Per BGR crop (w, w, 3) uint8, its 21 hand keypoints (21, 2) in the crop's pixels, (0, 0) where not found
    (controlnet_aux's `Hand.__call__`, each scale's network call batched over every crop)."""
    from .pose import _openpose_modules

    util = _openpose_modules()[2]
    if not crops:
        return []
    blurred = [cv2.GaussianBlur(c, (0, 0), 0.8) for c in crops]
    heat = [np.zeros((HAND_GRID, HAND_GRID, 22)) for _ in crops]
    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:  # OpenCV works outside the GIL
        for scale in (s * box for s in scales):
            padded = list(pool.map(lambda b: util.padRightDownCorner(util.smart_resize(b, (scale, scale)), 8, 128),
                                   blurred))
            inputs = np.stack([p for p, _ in padded]).astype(np.float32) / 256 - 0.5
            out = _run(net, inputs, batch_size).numpy()

            def add(k):
                p, pad = padded[k]
                h = util.smart_resize_k(np.transpose(out[k], (1, 2, 0)), fx=8, fy=8)
                h = h[:p.shape[0] - pad[2], :p.shape[1] - pad[3], :]
                heat[k] += util.smart_resize(h, (HAND_GRID, HAND_GRID)) / len(scales)

            list(pool.map(add, range(len(crops))))
        return list(pool.map(_hand_search, crops, heat))


def _hand_search(crop: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """The 21 peaks (crop pixels) of one hand's scale-averaged heatmaps (HAND_GRID, HAND_GRID, 22)."""
    from scipy.ndimage import gaussian_filter

    from .pose import _openpose_modules

    util = _openpose_modules()[2]
    rows, cols = crop.shape[:2]
    found = []
    for part in range(HAND_POINTS):
        map_ori = heat[:, :, part]
        binary = np.ascontiguousarray(gaussian_filter(map_ori, sigma=3) > 0.05, dtype=np.uint8)
        if binary.sum() == 0:
            found.append((0, 0))
            continue
        count, labels = cv2.connectedComponents(binary, connectivity=8)
        best = np.argmax([map_ori[labels == i].sum() for i in range(1, count)]) + 1
        map_ori = np.where(labels == best, map_ori, 0)
        y, x = util.npmax(map_ori)
        found.append((int(float(x) * float(cols) / HAND_GRID), int(float(y) * float(rows) / HAND_GRID)))
    return np.asarray(found, np.float64)


def face_peaks(net, crops, *, size: int = FACE_SIZE, batch_size: int = 16) -> list[np.ndarray]:
    """Per BGR crop (w, w, 3) uint8, the face landmarks found (K, 2) in the crop's pixels (controlnet_aux's
    `Face.__call__` and `compute_peaks_from_heatmaps`, the network batched over every crop)."""
    from .pose import _openpose_modules

    util = _openpose_modules()[2]
    if not crops:
        return []
    finder = face_module().Face.__new__(face_module().Face)
    inputs = np.stack([util.smart_resize(c, (size, size)) for c in crops]).astype(np.float32) / 256.0 - 0.5
    out = _run(net, inputs, batch_size)
    peaks = []
    for k, crop in enumerate(crops):
        heat = F.interpolate(out[k:k + 1], crop.shape[:2], mode="bilinear", align_corners=True).numpy()[0]
        peaks.append(np.asarray(finder.compute_peaks_from_heatmaps(heat), np.float64).reshape(-1, 2))
    return peaks


def to_fractions(peaks: np.ndarray, x: int, y: int, width: int, height: int) -> np.ndarray:
    """Crop pixels -> fractions of the frame, in float32 as controlnet_aux computes them (so they round to the
    same pixels when drawn); a coordinate at 0 (not found) becomes NaN."""
    peaks = np.asarray(peaks, np.float32).reshape(-1, 2)
    out = np.stack([peaks[:, 0] + x, peaks[:, 1] + y], axis=1) / np.array([width, height], np.float32)
    out[peaks < 1e-6] = np.nan
    return out
