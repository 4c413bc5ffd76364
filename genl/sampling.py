"""The denoising loop shared by every pipeline: scheduler steps around `co_denoise`.

Like k-diffusion's samplers this is a small function of (model evaluation, latents, schedule, callback);
everything model-specific lives in the `denoise` callable the pipeline builds, and everything about clips
in the `CoDenoisePlan`. The denoise callable gets the windows themselves, (start, end) pairs, so it can
look up per-window conditions whatever windows a step uses.
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

from .codenoise import Window, joins_frames
from .distributed import DistributedContext, co_denoise_for
from .plan import CoDenoisePlan
from .prediction import x0_from_output
from .progress import Cancelled, Progress, check_cancel, report

# denoise(stacked clips (k*B, C, M, h, w), t, the k windows) -> model outputs, same shape
WindowDenoise = Callable[[torch.Tensor, object, Sequence[Window]], torch.Tensor]

_SCHEDULERS = {
    "ddim": (DDIMScheduler, {}),
    "dpm++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++"}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "unipc": (UniPCMultistepScheduler, {}),
    "lcm": (LCMScheduler, {}),
}


def make_scheduler(name: str, config) -> object:
    """A fresh scheduler of the named family from any diffusers scheduler config (keeps betas etc.)."""
    if name not in _SCHEDULERS:
        raise ValueError(f"Unknown scheduler '{name}'. Choose one of: {', '.join(_SCHEDULERS)}.")
    cls, extra = _SCHEDULERS[name]
    overrides = dict(extra)
    if name == "ddim":
        overrides.update(clip_sample=False, set_alpha_to_one=False)
    return cls.from_config(config, **overrides)


def predicted_x0(scheduler, model_output: torch.Tensor, latents: torch.Tensor, t, step_output=None):
    """The current clean-latent estimate for previews (the scheduler's own when it reports one)."""
    x0 = getattr(step_output, "pred_original_sample", None)
    if x0 is None:
        x0 = getattr(step_output, "denoised", None)
    if x0 is not None:
        return x0
    a = scheduler.alphas_cumprod.to(latents.device)[int(t)].to(torch.float32)
    return x0_from_output(model_output.float(), latents.float(), a, scheduler.config.prediction_type)


def co_denoise_step(x: torch.Tensor, t, plan: CoDenoisePlan, step: int, denoise: WindowDenoise,
                    is_cancelled: Optional[Callable[[], bool]] = None) -> torch.Tensor:
    """The fused model output at one step over `plan.windows_at(step)`, checking for a cancel before every
    batch of windows (a 960-frame step is hundreds of clips: a cancel must not wait for all of them)."""
    windows = plan.windows_at(step)

    def batch(stacked, t, indices):
        check_cancel(is_cancelled)
        return denoise(stacked, t, [windows[i] for i in indices])

    batch.joins_frames = joins_frames(denoise)  # the window denoiser's, passed on
    return co_denoise_for(plan.parallel)(x, t, windows, plan.weights_at(step), denoise_batch=batch,
                                         windows_per_call=plan.windows_per_call)


def rank_view(plan: CoDenoisePlan, callback: Optional[Progress], is_cancelled: Optional[Callable[[], bool]]):
    """(group or None, callback, is_cancelled) as this rank must use them in a loop over `plan`.

    In a group of several ranks the cancel check is the state every rank agreed on (a local check could stop
    one rank mid-step and leave the rest waiting in a collective); the local check, if the caller has one,
    feeds that agreement. Progress and previews come from rank 0 only."""
    ctx: Optional[DistributedContext] = plan.parallel
    if ctx is None or ctx.world_size == 1:
        return None, callback, is_cancelled
    if ctx.local_cancel is None and is_cancelled is not None and is_cancelled != ctx.is_cancelled:
        ctx.watch_cancel(is_cancelled)
    return ctx, (callback if ctx.is_main else None), ctx.is_cancelled


def co_denoise_sample(
    scheduler,
    latents: torch.Tensor,
    timesteps: Sequence,
    plan: CoDenoisePlan,
    denoise: WindowDenoise,
    *,
    callback: Optional[Progress] = None,
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
    callback gets one progress dict per step (genl/progress.py).

    With `plan.parallel` (a group of ranks) every rank runs this same loop on its share of the windows and
    ends with the same latents; then ranks other than 0 raise RankDone, as decoding and writing are rank 0's.
    """
    total = len(timesteps)
    plan = plan.for_steps(total)
    ctx, callback, is_cancelled = rank_view(plan, callback, is_cancelled)
    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    for i, t in enumerate(timesteps):
        check_cancel(is_cancelled)
        model_in = scheduler.scale_model_input(latents, t)
        out = co_denoise_step(model_in, t, plan, i, denoise, is_cancelled)
        if x0_hook is not None:
            out = x0_hook(out, model_in, t)
        step = scheduler.step(out, t, latents, **step_kwargs)
        if callback is not None:
            report(callback, stage, i + 1, total, predicted_x0(scheduler, out, latents, t, step))
        latents = step.prev_sample
        if step_hook is not None:
            latents = step_hook(latents, i)
    check_cancel(is_cancelled)
    if ctx is not None:
        ctx.end_collectives()
    return latents


__all__ = ["Cancelled", "check_cancel", "co_denoise_sample", "co_denoise_step", "make_scheduler", "predicted_x0",
           "rank_view"]
