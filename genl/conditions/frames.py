"""Where object masks read a video's frames from: an array already in memory (the edit job holds its frames), or a
trimmed video file decoded chunk by chunk on demand (`VideoFrames`), so a long video is never held whole.

Everything here walks chunks: the content hash of the cache key, the frame count, the frames to preview.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Union

import numpy as np

HASH_CHUNK = 64  # frames decoded at a time when only hashing or counting


@dataclass(frozen=True)
class VideoFrames:
    """A trimmed, resized video file, read again (chunk by chunk) each time it is walked: read_video's arguments."""
    path: str
    fps: Optional[float] = None
    start: float = 0.0
    end: Optional[float] = None
    max_frames: Optional[int] = None
    size: object = None

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        from genl.video_io import read_video_chunks

        return read_video_chunks(self.path, size, fps=self.fps, start=self.start, end=self.end,
                                 max_frames=self.max_frames, size=self.size)


Frames = Union[np.ndarray, VideoFrames]


def frame_chunks(frames: Frames, size: int) -> Iterator[np.ndarray]:
    """(<= size, H, W, 3) uint8 chunks of `frames`: views into an array, or decoded from the file."""
    if isinstance(frames, np.ndarray):
        return (frames[i:i + size] for i in range(0, len(frames), size))
    return frames.chunks(size)


def frames_hash(frames: Frames) -> str:
    """Content hash of the decoded frames (what masks and control maps are computed from, after trimming and
    resizing); the same for an array and for the file it was read from."""
    h, count, shape = hashlib.blake2b(digest_size=16), 0, ()
    for chunk in frame_chunks(frames, HASH_CHUNK):
        h.update(np.ascontiguousarray(chunk).data)
        count, shape = count + len(chunk), chunk.shape[1:]
    h.update(str((count, *shape)).encode())
    return h.hexdigest()


def frames_shape(frames: Frames) -> tuple[int, int, int]:
    """(F, H, W) without holding the video."""
    if isinstance(frames, np.ndarray):
        return frames.shape[:3]
    count, hw = 0, (0, 0)
    for chunk in frame_chunks(frames, HASH_CHUNK):
        count, hw = count + len(chunk), chunk.shape[1:3]
    return (count, *hw)


def take(frames: Frames, indices: Sequence[int]) -> np.ndarray:
    """The frames at `indices` (sorted, e.g. sampled for a preview), decoding only up to the last one."""
    if isinstance(frames, np.ndarray):
        return frames[list(indices)]
    wanted, out, start = sorted(set(indices)), {}, 0
    for chunk in frame_chunks(frames, HASH_CHUNK):
        for i in wanted:
            if start <= i < start + len(chunk):
                out[i] = chunk[i - start].copy()
        start += len(chunk)
        if start > wanted[-1]:
            break
    return np.stack([out[i] for i in indices])


class SquareInputModel:
    """A model fed square frames of `model.config.image_size` px, normalised by (mean, std): the SAM 2 and SAM 3
    segmenters. Resizing and normalising happen in torch on the model's device, the way the checkpoints' image
    processors do, with no image-processor backend (torchvision)."""

    def __init__(self, model, mean, std):
        size = model.config.image_size
        self.model, self.mean, self.std = model.eval(), mean, std
        self.size = int(size if np.isscalar(size) else size[0])

    @property
    def device(self):
        return next(self.model.parameters()).device

    @property
    def dtype(self):
        return next(self.model.parameters()).dtype

    def pixels(self, frames: np.ndarray):
        """(N, 3, size, size) model input from (N, H, W, 3) uint8 frames."""
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).float() / 255
        x = F.interpolate(x, (self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        mean = torch.as_tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.as_tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return ((x - mean) / std).to(self.dtype)
