"""Depth maps for depth ControlNets, from transformers' Depth Anything (V2 Small by default), batched.

Why Depth Anything rather than controlnet-aux's MiDaS or Zoe: those need timm and a torchvision matching
torch (controlnet_aux imports `torchvision.transforms` at module level), and PyPI's torchvision wheel does not
load against this studio's CPU torch build (`operator torchvision::nms does not exist`), so they do not
install cleanly; Depth Anything needs only transformers, already a dependency, and is the newer, better
relative-depth model (V2 Small: 25 M parameters vs MiDaS DPT-Hybrid's 123 M).

Output format as lllyasviel/control_v11f1p_sd15_depth expects: relative inverse depth (near is bright),
min-max scaled to 0..255, grey over 3 channels. The scale is shared by the whole video by default (a per-frame
scale, as the image annotators use, makes the maps flicker when the range in view changes).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .pose import check_frames

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DepthAnything:
    """frames (N, H, W, 3) uint8 RGB -> depth maps (N, H, W, 3) uint8. Built from a
    DepthAnythingForDepthEstimation (random weights in tests) or loaded with `DepthAnything.load`."""

    name = "depth_anything"

    def __init__(self, model, input_size: int = 518, batch_size: int = 16):
        """input_size: the shorter side the network sees, rounded to its patch size (518 as trained)."""
        self.model = model.eval()
        self.patch = model.config.patch_size
        self.input_size = input_size
        self.batch_size = batch_size

    @classmethod
    def load(cls, source: str = "", device: str = "cpu", dtype=torch.float32, **kw) -> "DepthAnything":
        """source: a folder or hub id of a transformers Depth Anything model (offline-aware)."""
        from transformers import DepthAnythingForDepthEstimation

        from genl.models import DEFAULT_DEPTH, _from_pretrained

        model = _from_pretrained(DepthAnythingForDepthEstimation, source or DEFAULT_DEPTH, dtype=dtype)
        return cls(model.to(device), **kw)

    def _input_hw(self, h: int, w: int) -> tuple[int, int]:
        scale = self.input_size / min(h, w)
        return (max(self.patch, round(h * scale / self.patch) * self.patch),
                max(self.patch, round(w * scale / self.patch) * self.patch))

    @torch.no_grad()
    def depth(self, frames: np.ndarray) -> np.ndarray:
        """Relative inverse depth (N, H, W) float32 at the frames' size (larger is nearer)."""
        frames = check_frames(frames, "Depth estimation")
        param = next(self.model.parameters())
        h, w = frames.shape[1:3]
        mean = torch.tensor(IMAGENET_MEAN, device=param.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=param.device).view(1, 3, 1, 1)
        out = []
        for i in range(0, len(frames), self.batch_size):
            x = torch.from_numpy(frames[i:i + self.batch_size]).to(param.device).permute(0, 3, 1, 2).float() / 255
            x = F.interpolate(x, size=self._input_hw(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
            pred = self.model(pixel_values=((x - mean) / std).to(param.dtype)).predicted_depth
            pred = F.interpolate(pred.float()[:, None], size=(h, w), mode="bicubic", align_corners=False)[:, 0]
            out.append(pred.cpu())
        return torch.cat(out).numpy()

    def __call__(self, frames: np.ndarray, per_frame: bool = False) -> np.ndarray:
        return depth_to_map(self.depth(frames), per_frame)


def depth_to_map(depth: np.ndarray, per_frame: bool = False) -> np.ndarray:
    """(N, H, W) relative inverse depth -> (N, H, W, 3) uint8, min-max scaled to 0..255 over the video
    (or over each frame with per_frame)."""
    depth = np.asarray(depth, np.float32)
    axes = (1, 2) if per_frame else (0, 1, 2)
    lo = depth.min(axis=axes, keepdims=True)
    span = depth.max(axis=axes, keepdims=True) - lo
    grey = np.where(span > 0, (depth - lo) / np.maximum(span, 1e-8), 0.0)
    return np.repeat(np.rint(grey * 255).astype(np.uint8)[..., None], 3, axis=-1)
