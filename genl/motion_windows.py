"""Co-denoising inside AnimateDiff's motion modules (FreeNoise-style): spatial layers once per frame,
temporal attention per clip, clips fused with the weights W_i right after each motion module.

AnimateDiff's spatial layers (ResNets, spatial and text attention) treat every frame on its own, so running
them on overlapping clips F_i(v) repeats identical work. Only the motion modules mix frames, and only over
M frames. With `window_motion_modules` the UNet is called once on the whole long video; each motion module
splits its input into the clips F_i, runs the original module on stacked clips, and rebuilds the long
feature map with `co_denoise` (the same closed-form weighted average as for model outputs). The windows can
change every step (`MotionWindows.set`), e.g. from `shifted_windows`.

Cost per step: spatial layers on N frames instead of sum_i |F_i|. Memory: activations of the whole video in
one call, so long videos need the per-clip path (`co_denoise` on model outputs) instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
from torch import nn

from .codenoise import Window, co_denoise


@dataclass
class MotionWindows:
    """The clips F_i and weights W_i every wrapped motion module uses for the current step."""

    windows: Sequence[Window] = ()
    weights: Sequence[torch.Tensor] = ()
    windows_per_call: int = 9  # clips stacked per motion-module call: one call per shifted 128-frame step
    calls: int = field(default=0, repr=False)  # motion-module calls made, for tests and benches

    def set(self, windows: Sequence[Window], weights: Sequence[torch.Tensor]) -> None:
        if len(windows) != len(weights):
            raise ValueError(f"Got {len(windows)} windows but {len(weights)} weight vectors.")
        self.windows, self.weights = list(windows), list(weights)


class WindowedMotionModule(nn.Module):
    """Wraps one AnimateDiffTransformer3D so it runs per clip and fuses; same call signature."""

    def __init__(self, module: nn.Module, plan: MotionWindows):
        super().__init__()
        self.module = module
        self.plan = plan

    def forward(self, hidden_states, encoder_hidden_states=None, timestep=None, class_labels=None,
                num_frames: int = 1, cross_attention_kwargs=None):
        windows = self.plan.windows
        if not windows:
            raise ValueError("Motion-module windows are not set for this step (MotionWindows.set).")
        length = windows[0][1] - windows[0][0]
        if len(windows) == 1 and length == num_frames:
            return self.module(hidden_states, encoder_hidden_states, timestep, class_labels, num_frames,
                               cross_attention_kwargs)
        batch_frames, channels, height, width = hidden_states.shape
        video = hidden_states.view(batch_frames // num_frames, num_frames, channels, height, width)

        def clips(stacked, t, indices):  # stacked: (k*batch, M, C, H, W), each clip's batch rows together
            self.plan.calls += 1
            out = self.module(stacked.reshape(-1, channels, height, width), encoder_hidden_states, timestep,
                              class_labels, length, cross_attention_kwargs)
            return out.view(stacked.shape)

        fused = co_denoise(video, None, windows, self.plan.weights, denoise_batch=clips,
                           windows_per_call=self.plan.windows_per_call, frame_dim=1)
        return fused.reshape(batch_frames, channels, height, width)


def _motion_lists(unet) -> list[nn.ModuleList]:
    if not hasattr(unet, "down_blocks"):
        return []
    blocks = [*unet.down_blocks, unet.mid_block, *unet.up_blocks]
    return [b.motion_modules for b in blocks if hasattr(b, "motion_modules")]


def has_motion_modules(unet) -> bool:
    """Whether `unet` is an AnimateDiff UNetMotionModel, the only kind `fusion="motion"` works with."""
    return bool(_motion_lists(unet))


def check_fusion(unet, fusion: str) -> None:
    """ValueError, in plain words, for fusion inside motion modules on a model that has none."""
    if fusion == "motion" and not has_motion_modules(unet):
        raise ValueError("Fusion inside motion modules works with AnimateDiff models only: choose the 'output' "
                         "fusion for this model or mode.")


def window_motion_modules(unet, windows_per_call: Optional[int] = None) -> MotionWindows:
    """Wrap every motion module of a UNetMotionModel (in place); returns the shared per-step plan."""
    lists = _motion_lists(unet)
    if not lists:
        raise ValueError("Fusing inside motion modules needs an AnimateDiff (UNetMotionModel) model.")
    plan = MotionWindows()
    if windows_per_call:
        plan.windows_per_call = int(windows_per_call)
    for modules in lists:
        for i, module in enumerate(modules):
            inner = module.module if isinstance(module, WindowedMotionModule) else module
            modules[i] = WindowedMotionModule(inner, plan)
    return plan


def unwindow_motion_modules(unet) -> None:
    """Put the original motion modules back (undo `window_motion_modules`)."""
    for modules in _motion_lists(unet):
        for i, module in enumerate(modules):
            if isinstance(module, WindowedMotionModule):
                modules[i] = module.module
