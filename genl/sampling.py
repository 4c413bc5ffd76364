"""The denoising loop shared by every pipeline: scheduler steps around `co_denoise`.

Like k-diffusion's samplers this is a small function of (model evaluation, latents, schedule, callback);
everything model-specific lives in the `denoise_batch` callable the pipeline builds.
"""
from __future__ import annotations

import inspect
from typing import Callable, Optional, Sequence

import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    UniPCMultistepScheduler,
)

from .codenoise import co_denoise

Callback = Callable[[str, int, int, Optional[torch.Tensor]], None]

_SCHEDULERS = {
    "ddim": (DDIMScheduler, {}),
    "dpm++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++"}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "unipc": (UniPCMultistepScheduler, {}),
    "lcm": (LCMScheduler, {}),
}


class Cancelled(Exception):
    """Raised between steps when the job's cancel check turns true."""


def make_scheduler(name: str, config) -> object:
    """A fresh scheduler of the named family from any diffusers scheduler config (keeps betas etc.)."""
    if name not in _SCHEDULERS:
        raise ValueError(f"Unknown scheduler '{name}'. Choose one of: {', '.join(_SCHEDULERS)}.")
    cls, extra = _SCHEDULERS[name]
    overrides = dict(extra)
    if name == "ddim":
        overrides.update(clip_sample=False, set_alpha_to_one=False)
    return cls.from_config(config, **overrides)


def check_cancel(is_cancelled: Optional[Callable[[], bool]]) -> None:
    if is_cancelled is not None and is_cancelled():
        raise Cancelled("The job was cancelled.")


def predicted_x0(scheduler, model_output: torch.Tensor, latents: torch.Tensor, t, step_output=None):
    """The current clean-latent estimate for previews (the scheduler's own when it reports one)."""
    x0 = getattr(step_output, "pred_original_sample", None)
    if x0 is None:
        x0 = getattr(step_output, "denoised", None)
    if x0 is not None:
        return x0
    a = scheduler.alphas_cumprod.to(latents.device)[int(t)].to(torch.float32)
    x, out = latents.float(), model_output.float()
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return (x - (1 - a).sqrt() * out) / a.sqrt()
    if kind == "v_prediction":
        return a.sqrt() * x - (1 - a).sqrt() * out
    return out


def co_denoise_sample(
    scheduler,
    latents: torch.Tensor,
    timesteps: Sequence,
    windows,
    weights,
    denoise_batch,
    *,
    windows_per_call: int = 1,
    callback: Optional[Callback] = None,
    is_cancelled: Optional[Callable[[], bool]] = None,
    generator: Optional[torch.Generator] = None,
    x0_hook: Optional[Callable[[torch.Tensor, torch.Tensor, object], torch.Tensor]] = None,
    step_hook: Optional[Callable[[torch.Tensor, int], torch.Tensor]] = None,
    stage: str = "denoise",
) -> torch.Tensor:
    """Run the scheduler over `timesteps`, fusing the windows' model outputs at every step.

    x0_hook(model_output, model_input, t) -> model_output lets a pipeline adjust the fused prediction (e.g.
    the adjacent-frame distance penalty) before the scheduler steps; model_input is the scaled latent the
    model saw (variance-preserving form for every scheduler here). step_hook(latents, i) -> latents runs on
    the stepped latents after step i (e.g. masked editing pastes the source back outside the mask).
    """
    total = len(timesteps)
    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    for i, t in enumerate(timesteps):
        check_cancel(is_cancelled)
        model_in = scheduler.scale_model_input(latents, t)
        out = co_denoise(model_in, t, windows, weights, denoise_batch=denoise_batch,
                         windows_per_call=windows_per_call)
        if x0_hook is not None:
            out = x0_hook(out, model_in, t)
        step = scheduler.step(out, t, latents, **step_kwargs)
        if callback is not None:
            callback(stage, i + 1, total, predicted_x0(scheduler, out, latents, t, step))
        latents = step.prev_sample
        if step_hook is not None:
            latents = step_hook(latents, i)
    check_cancel(is_cancelled)
    return latents
