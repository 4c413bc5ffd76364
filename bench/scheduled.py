"""A denoising loop whose windows F_i may change every step, for the benches.

`genl.sampling.co_denoise_sample` takes one window list for the whole run; until the pipelines take a
per-step plan, the benches use this loop (same order of operations: scale input -> co_denoise -> hook ->
scheduler step). `fusion="motion"` calls the model once on the whole video and lets the wrapped motion
modules fuse the step's clips (genl.motion_windows); `fusion="output"` fuses model outputs per clip.
"""
from __future__ import annotations

import inspect
from typing import Callable, Sequence

import torch

from genl.codenoise import (
    SHIFT_OFFSETS,
    Window,
    co_denoise,
    make_windows,
    offset_windows,
    shifted_windows,
    window_weights,
)

SCHEDULES = ("paper", "shifted", "isolated")


def windows_for(schedule: str, num_frames: int, length: int, stride: int) -> Callable[[int], list[Window]]:
    """step -> windows: 'paper' fixed stride-S grid, 'shifted' moving grid ('shifted-cyclic' etc. for the
    other offset sequences of SHIFT_OFFSETS), 'isolated' fixed S=M grid."""
    if schedule == "paper":
        fixed = make_windows(num_frames, length, stride)
        return lambda step: fixed
    if schedule == "isolated":
        fixed = make_windows(num_frames, length, length)
        return lambda step: fixed
    if schedule == "shifted":
        return lambda step: shifted_windows(num_frames, length, stride, step)
    if schedule.startswith("shifted-") and schedule[8:] in SHIFT_OFFSETS:  # another offset sequence
        offset = SHIFT_OFFSETS[schedule[8:]]
        return lambda step: offset_windows(num_frames, length, stride, offset(step, stride, length))
    raise ValueError(f"Unknown window schedule '{schedule}'. Choose one of: {', '.join(SCHEDULES)}.")


@torch.no_grad()
def scheduled_sample(scheduler, latents: torch.Tensor, timesteps: Sequence, windows_at, weights: str,
                     length: int, make_denoise: Callable[[list[Window]], Callable], *, windows_per_call: int = 1,
                     fusion: str = "output", motion_plan=None, first_step: int = 0,
                     x0_hook=None) -> torch.Tensor:
    """Run `timesteps`; step k uses windows_at(first_step + k).

    make_denoise(windows) -> denoise_batch(x, t, indices) for that step's windows (the per-window text
    conditions depend on them). With fusion='motion', `motion_plan` (genl.motion_windows.MotionWindows) gets
    the step's windows and make_denoise([(0, N)]) must call the UNet on the whole video.
    """
    w = window_weights(weights, length)
    num_frames = latents.shape[2]
    step_kwargs = {}
    if "generator" in inspect.signature(scheduler.step).parameters:
        step_kwargs["generator"] = torch.Generator(latents.device).manual_seed(0)
    for k, t in enumerate(timesteps):
        windows = windows_at(first_step + k)
        model_in = scheduler.scale_model_input(latents, t)
        if fusion == "motion":
            motion_plan.set(windows, [w] * len(windows))
            whole = [(0, num_frames)]
            out = co_denoise(model_in, t, whole, [torch.ones(num_frames)], denoise_batch=make_denoise(whole))
        else:
            out = co_denoise(model_in, t, windows, [w] * len(windows), denoise_batch=make_denoise(windows),
                             windows_per_call=windows_per_call)
        if x0_hook is not None:
            out = x0_hook(out, model_in, t)
        latents = scheduler.step(out, t, latents, **step_kwargs).prev_sample
    return latents
