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


def frames_key(frames: np.ndarray) -> str:
    """sha256 of the frames' shape and bytes."""
    h = hashlib.sha256(repr(frames.shape).encode())
    h.update(np.ascontiguousarray(frames).data)
    return h.hexdigest()


class ControlCache:
    """Extracted control maps (N, H, W, 3) uint8 stored as .npy under `folder`, keyed by frames, detector, settings."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def path(self, frames: np.ndarray, detector: str, settings: dict) -> Path:
        key = hashlib.sha256(json.dumps([frames_key(frames), detector, settings], sort_keys=True).encode())
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
