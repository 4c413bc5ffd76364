"""Control maps for a job: extracted once per (video, detector, settings) and kept on disk, or read from a ready
control video the user uploaded; previewed as a side-by-side strip and saved as a downloadable mp4.

The key hashes the decoded frames (after trimming and resizing), not the file, so the same upload trimmed two
ways gets two entries, and the same frames from two files share one.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import numpy as np

from .pose import check_frames
from .mask_io import frames_hash  # one content hash of decoded frames for every cache key


class ControlCache:
    """Extracted control maps (N, H, W, 3) uint8 stored as .npy under `folder`, keyed by frames, detector, settings."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def path(self, frames: np.ndarray, detector: str, settings: dict) -> Path:
        key = hashlib.sha256(json.dumps([frames_hash(frames), detector, settings], sort_keys=True).encode())
        return self.folder / f"{detector}-{key.hexdigest()[:24]}.npy"

    def maps(self, frames: np.ndarray, detector: str, settings: dict,
             extract: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, bool]:
        """(maps, from_cache): the stored maps, or extract(frames) stored for next time."""
        frames = check_frames(frames, "Control extraction")
        path = self.path(frames, detector, settings)
        if path.exists():
            maps = np.load(path)
            if maps.shape == frames.shape:
                return maps, True
        maps = np.asarray(extract(frames))
        if maps.shape != frames.shape or maps.dtype != np.uint8:
            raise ValueError(f"The {detector} detector returned maps {maps.shape} {maps.dtype}, "
                             f"expected {frames.shape} uint8.")
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, maps)
        tmp.replace(path)  # atomic: a worker stopped mid-write leaves no half entry
        return maps, False


def uploaded_control(path, num_frames: int, height: int, width: int) -> np.ndarray:
    """A ready pose/depth/edge video used as is: its first `num_frames` frames at the video's size.

    Fails in plain words when it is shorter than the video it should steer."""
    from genl.video_io import read_video, resize_frames

    maps, _ = read_video(path, max_frames=num_frames, multiple=1)
    if len(maps) < num_frames:
        raise ValueError(f"The uploaded control video has {len(maps)} frames but the video to make has "
                         f"{num_frames}. Upload a control video at least as long, or make fewer frames.")
    if maps.shape[1:3] != (height, width):
        maps = resize_frames(maps, width, height)
    return maps


def preview_strip(frames: np.ndarray, maps: np.ndarray, count: int = 4, height: int = 128) -> np.ndarray:
    """One image (2 rows: frames over their maps) of `count` evenly spaced frames, for checking a control
    video before spending a run on it."""
    from genl.video_io import resize_frames

    frames, maps = check_frames(frames, "The preview"), check_frames(maps, "The preview")
    if frames.shape != maps.shape:
        raise ValueError(f"Frames {frames.shape} and control maps {maps.shape} differ in shape.")
    idx = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    width = max(8, round(frames.shape[2] * height / frames.shape[1]))
    top = resize_frames(frames[idx], width, height)
    bottom = resize_frames(maps[idx], width, height)
    return np.concatenate([np.concatenate(list(top), axis=1), np.concatenate(list(bottom), axis=1)], axis=0)


def save_control_video(maps: np.ndarray, path, fps: float = 8) -> Path:
    """The control maps as an mp4 the user can download and upload again as a ready control video."""
    from genl.video_io import write_mp4

    return write_mp4(check_frames(maps, "Saving a control video"), path, fps=fps)


# ---------------------------------------------------------------- detectors by name

DETECTORS = {"edges": ("canny",), "pose": ("openpose", "openpose_hand", "openpose_full", "demo_estimator"),
             "depth": ("depth_anything",)}
DETECTOR_LABELS = {
    "canny": "Canny edges (OpenCV)",
    "openpose": "OpenPose body (controlnet-aux, lllyasviel/Annotators)",
    "openpose_hand": "OpenPose body + hands (controlnet-aux, lllyasviel/Annotators)",
    "openpose_full": "OpenPose body + hands + face (controlnet-aux, lllyasviel/Annotators)",
    "demo_estimator": "the demo world's tiny pose estimator (trained on stick figures only; a stand-in for OpenPose)",
    "depth_anything": "Depth Anything V2 Small (transformers)",
}


def default_detector(kind: str, demo: bool = False) -> str:
    """The detector that makes `kind` maps: in the demo world, pose comes from the tiny figure estimator."""
    if kind == "pose" and demo:
        return "demo_estimator"
    return DETECTORS[kind][0]


def check_detector(kind: str, detector: str) -> str:
    if detector not in DETECTORS[kind]:
        raise ValueError(f"Unknown {kind} detector '{detector}'. Choose one of: {', '.join(DETECTORS[kind])}.")
    return detector


def load_detector(detector: str, device: str = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    """frames (N, H, W, 3) uint8 -> maps of the same shape, for a detector name of DETECTORS."""
    if detector == "canny":
        from .edges import edge_map

        return edge_map
    if detector in ("openpose", "openpose_hand", "openpose_full"):
        from .pose import OpenPose

        return OpenPose.load(device=device, mode=detector)
    if detector == "depth_anything":
        from .depth import DepthAnything

        return DepthAnything.load(device=device)
    if detector == "demo_estimator":
        from genl.demo.pose_estimator import estimate, load_estimator
        from genl.models import DEMO_POSE_CONTROLNET_DIR

        from .pose import draw_openpose_video

        net = load_estimator(DEMO_POSE_CONTROLNET_DIR, device)

        def demo_pose(frames):
            return draw_openpose_video(estimate(net, frames)[:, None], frames.shape[1], frames.shape[2])

        return demo_pose
    raise ValueError(f"Unknown detector '{detector}'.")


def control_maps(spec, frames, cache: "ControlCache", *, demo: bool = False, device: str = "cpu",
                 size: tuple = None, num_frames: int = None) -> tuple[np.ndarray, str]:
    """(maps, note) for one ControlSpec: its ready control video as is, else `frames` run through its detector
    (cached per frames, detector and settings). size = (height, width) and num_frames apply to a ready video."""
    if spec.video:
        n = num_frames if num_frames is not None else len(frames)
        h, w = size if size is not None else frames.shape[1:3]
        return uploaded_control(spec.video, n, h, w), f"{spec.type}: the uploaded control video"
    if frames is None:
        raise ValueError(f"The {spec.type} control has no video to extract from: upload a reference video.")
    detector = check_detector(spec.type, spec.detector or default_detector(spec.type, demo))
    loaded = {}

    def extract(x):
        loaded["fn"] = loaded.get("fn") or load_detector(detector, device)
        return loaded["fn"](x)

    maps, hit = cache.maps(frames, detector, {"type": spec.type}, extract)
    return maps, f"{spec.type}: {DETECTOR_LABELS[detector]}{' (cached)' if hit else ''}"
