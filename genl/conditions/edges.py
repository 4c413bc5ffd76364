"""Control images for ControlNet conditioning, computed from any video's frames."""
from __future__ import annotations

import cv2
import numpy as np


def edge_map(frames: np.ndarray, low: int = 100, high: int = 200) -> np.ndarray:
    """Canny edges of each frame as a ControlNet conditioning image.

    frames: (F, H, W, 3) uint8 RGB (a single (H, W, 3) frame is accepted too).
    Returns the same shape, uint8: white (255) edges on black, the edge mask repeated over 3 channels,
    which is the format edge ControlNets (lllyasviel's canny, the demo's) are trained on.
    `low`/`high` are Canny's hysteresis thresholds on the grayscale frame's gradient.
    """
    frames = np.asarray(frames)
    single = frames.ndim == 3
    if single:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"Edge maps need RGB frames shaped (frames, height, width, 3), got {frames.shape}.")
    if frames.dtype != np.uint8:
        raise ValueError(f"Edge maps need 8-bit frames (uint8, 0..255), got {frames.dtype}.")
    edges = np.stack([cv2.Canny(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), low, high) for f in frames])
    out = np.repeat(edges[..., None], 3, axis=-1)
    return out[0] if single else out
