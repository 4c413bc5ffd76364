"""Masks on disk: a cache per (video, prompt, settings), mask videos out (mp4) and in (a user's upload)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

import numpy as np

from .frames import Frames, frames_hash


class MaskCache:
    """One compressed .npz per (frames hash, prompt, settings key); bits packed, so 128 frames of 512x512 ~ 1 MB."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def key(self, frames: Frames, prompt: str, settings_key: dict) -> str:
        text = json.dumps({"video": frames_hash(frames), "prompt": prompt.strip().lower(), "settings": settings_key},
                          sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def get(self, key: str) -> Optional[dict]:
        path = self.folder / f"{key}.npz"
        if not path.exists():
            return None
        with np.load(path) as z:
            shape = tuple(z["shape"])
            masks = np.unpackbits(z["bits"])[: int(np.prod(shape))].reshape(shape).astype(bool)
            return {"masks": masks, "method": str(z["method"]), "note": str(z["note"])}

    def put(self, key: str, masks: np.ndarray, method: str, note: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f"{key}.tmp.npz"
        np.savez_compressed(tmp, bits=np.packbits(masks.astype(bool)), shape=np.array(masks.shape),
                            method=method, note=note)
        tmp.replace(self.folder / f"{key}.npz")


def write_mask_video(masks: np.ndarray, path, fps: float = 8, feather: float = 0.0) -> Path:
    """Masks (F, H, W) bool or float 0..1 as a grey mp4: white where the edit may change the video. With
    `feather` (px sigma) bool masks are feathered frame by frame, as the edit's composite blends them."""
    from genl.video_io import write_mp4

    from .masks import feather as soften

    grey = np.empty(masks.shape, np.uint8)
    for i, m in enumerate(masks):
        soft = soften(m[None], feather)[0] if feather > 0 else np.asarray(m, np.float32)
        grey[i] = np.clip(np.rint(soft * 255), 0, 255)
    return write_mp4(np.repeat(grey[..., None], 3, axis=-1), path, fps=fps)


def read_mask_video(path, num_frames: int, hw: tuple[int, int], *, fps: Optional[float] = None) -> np.ndarray:
    """A user's mask video -> (num_frames, H, W) bool (white = edit), resized to the video's frames (hw).

    Longer mask videos are cut to the video's length; shorter ones are refused."""
    import cv2

    from genl.video_io import read_video

    frames, _ = read_video(path, fps=fps, max_frames=num_frames)
    frames = np.stack([cv2.resize(f, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR) for f in frames]) \
        if len(frames) else frames
    if len(frames) < num_frames:
        raise ValueError(f"The mask video has {len(frames)} frames; the video to edit has {num_frames}. "
                         "Upload a mask video at least as long as the trimmed video (same fps).")
    masks = frames[:num_frames].mean(-1) > 127  # mp4 compression blurs the edges: threshold at mid grey
    if not masks.any():
        raise ValueError("The mask video is black everywhere: paint the object to edit white.")
    return masks
