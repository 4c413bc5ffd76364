"""Several ControlNets at once inside co-denoising: each with its own per-frame maps, strength and active part of
the schedule; their residuals summed as diffusers' MultiControlNetModel sums them.

A pipeline's denoise callable turns the windows W_i of a batch into rows of frames (F_i per window, CFG halves
stacked) and asks `control_residuals` for the UNet's extra residuals; each row gets the control map of its own
video frame, so window i is steered by its frames' maps only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

CONTROL_TYPES = ("edges", "pose", "depth")


@dataclass
class Control:
    """One ControlNet and its control video.

    images: (F, 3, H, W) in [0, 1], one map per video frame (see `control_tensor`).
    strength: diffusers' controlnet_conditioning_scale. start/end: diffusers' control_guidance_start/end, the
    fraction of the denoising steps during which this ControlNet acts."""
    controlnet: torch.nn.Module
    images: torch.Tensor
    strength: float = 1.0
    start: float = 0.0
    end: float = 1.0
    name: str = ""

    def __post_init__(self):
        check_schedule(self.name or "ControlNet", self.strength, self.start, self.end)

    def active(self, step: int, num_steps: int) -> bool:
        """diffusers' rule: step i is controlled unless i/n < start or (i+1)/n > end."""
        return not (step / num_steps < self.start or (step + 1) / num_steps > self.end)


def check_schedule(label: str, strength: float, start: float, end: float) -> None:
    if not 0.0 <= start < end <= 1.0:
        raise ValueError(f"{label} control: its start must come before its end, both between 0 and 1 "
                         f"(got start {start}, end {end}).")
    if strength < 0:
        raise ValueError(f"{label} control: strength cannot be negative (got {strength}).")


def control_tensor(frames: np.ndarray, num_frames: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(F, H, W, 3) uint8 control maps -> (F, 3, H, W) in [0, 1], checked against the video's frame count."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"Control maps must be 8-bit RGB frames shaped (frames, height, width, 3), "
                         f"got {frames.shape} {frames.dtype}.")
    if len(frames) != num_frames:
        raise ValueError(f"The control video has {len(frames)} frames but the video has {num_frames}.")
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    return (x.float() / 255.0).to(device=device, dtype=dtype)


def control_residuals(controls: Sequence[Control], latents: torch.Tensor, t, step: int, num_steps: int,
                      encoder_states: torch.Tensor, frame_indices: torch.Tensor):
    """Summed ControlNet residuals for a batch of frame latents, or None when no ControlNet acts at this step.

    latents (B, C, h, w): rows of frames as the UNet sees them; encoder_states (B, tokens, dim);
    frame_indices (B,): each row's frame in the video (repeat it for the CFG halves), which picks its map.
    Returns (down_block_additional_residuals, mid_block_additional_residual) for the UNet call."""
    down_sum, mid_sum = None, None
    for c in controls:
        if not c.active(step, num_steps) or c.strength == 0:
            continue
        hint = c.images[frame_indices.to(c.images.device)].to(latents.device, c.controlnet.dtype)
        down, mid = c.controlnet(latents.to(c.controlnet.dtype), t,
                                 encoder_hidden_states=encoder_states.to(c.controlnet.dtype),
                                 controlnet_cond=hint, conditioning_scale=c.strength, return_dict=False)
        if down_sum is None:
            down_sum, mid_sum = list(down), mid
        else:  # as MultiControlNetModel: residuals of every net added
            down_sum = [a + b for a, b in zip(down_sum, down)]
            mid_sum = mid_sum + mid
    return None if down_sum is None else (down_sum, mid_sum)


def unet_control_kwargs(residuals) -> dict:
    """The UNet keyword arguments for `control_residuals`' result (empty when no control acts)."""
    if residuals is None:
        return {}
    down, mid = residuals
    return {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}


@dataclass
class ControlSpec:
    """One entry of a job's control list, as settings carry it (JSON-friendly).

    type: 'edges' | 'pose' | 'depth'. model: the ControlNet ('demo', 'demo-pose', a folder or hub id; empty
    for the type's default). video: optional path of a ready control video (maps) to use as is; when empty,
    maps are extracted from the source video with the type's detector (`detector`, empty for its default)."""
    type: str = "pose"
    model: str = ""
    strength: float = 1.0
    start: float = 0.0
    end: float = 1.0
    video: str = ""
    detector: str = ""

    def validate(self) -> "ControlSpec":
        if self.type not in CONTROL_TYPES:
            raise ValueError(f"Unknown control type '{self.type}'. Choose one of: {', '.join(CONTROL_TYPES)}.")
        check_schedule(self.type, self.strength, self.start, self.end)
        if self.detector:
            from .conditions.control_cache import check_detector

            check_detector(self.type, self.detector)
        return self


def build_controls(specs: Sequence[ControlSpec], maps: Sequence[np.ndarray], num_frames: int, load,
                   device=None, dtype=torch.float32, demo: bool = False) -> list[Control]:
    """Controls ready for `control_residuals`: maps[k] (F, H, W, 3) uint8 of specs[k]; load(model_name) -> a
    ControlNetModel (e.g. ModelManager's cached loader)."""
    out: list[Control] = []
    for spec, frames in zip(specs, maps):
        spec.validate()
        net = load(spec.model or default_controlnet(spec.type, demo))
        out.append(Control(net, control_tensor(frames, num_frames, device, dtype), spec.strength, spec.start,
                           spec.end, name=spec.type))
    return out


def default_controlnet(kind: str, demo: bool = False) -> str:
    from genl.models import DEFAULT_CONTROLNETS, DEMO_NAME, DEMO_POSE_NAME

    if demo:
        if kind == "depth":
            raise ValueError("The demo model has no depth ControlNet; use edges or pose with it.")
        return DEMO_POSE_NAME if kind == "pose" else DEMO_NAME
    return DEFAULT_CONTROLNETS[kind]



def job_control_maps(specs: Sequence[ControlSpec], frames, cache_dir, *, demo: bool, device: str = "auto",
                     size=None, num_frames=None) -> tuple[list, list[str]]:
    """Each spec's maps (N, H, W, 3) uint8 for a job, from its ready video or extracted from `frames` (cached
    under cache_dir), and one note per spec naming where its maps came from."""
    from .conditions.control_cache import ControlCache, control_maps
    from .models import resolve_device

    cache = ControlCache(cache_dir)
    got = [control_maps(s, frames, cache, demo=demo, device=str(resolve_device(device)), size=size,
                        num_frames=num_frames) for s in specs]
    return [m for m, _ in got], [n for _, n in got]


def job_controls(specs: Sequence[ControlSpec], maps: Sequence[np.ndarray], pipe, num_frames: int, models=None,
                 demo: bool = False) -> list[Control]:
    """The specs' ControlNets loaded (through the ModelManager's cache when given) on the pipeline's device and
    dtype, each with its maps."""
    from .models import load_controlnet

    device, dtype = pipe.unet.device, pipe.unet.dtype

    def load(name):
        if models is not None:
            return models._controlnet(name, device, dtype)  # cached between jobs like the pipelines
        return load_controlnet(name, dtype).to(device).eval()

    return build_controls(specs, maps, num_frames, load, device, dtype, demo=demo)
