"""Rank functions for tests/test_distributed.py: module-level so spawned ranks can import them.

The same functions run in the test process with ctx=None (plain co_denoise), which is the reference the
ranks must reproduce.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from genl.codenoise import make_windows, window_weights
from genl.distributed import co_denoise_for
from genl.sampling import Cancelled
from tiny import tiny_scheduler, tiny_unet

FRAMES, CLIP, STRIDE = 14, 4, 2  # 6 windows, the last one ending exactly at frame 14


def problem(seed: int = 0):
    """Latents, windows F_i, weights W_i and a tiny-UNet denoise_batch with per-window text, all seeded."""
    gen = torch.Generator().manual_seed(seed)
    latents = torch.randn(1, 4, FRAMES, 8, 8, generator=gen)
    windows = make_windows(FRAMES, CLIP, STRIDE)
    weights = [window_weights("pyramid", CLIP)] * len(windows)
    text = torch.randn(len(windows), 6, 32, generator=gen)
    unet = tiny_unet().eval()

    def denoise_batch(x, t, indices):
        k, c, m, h, w = x.shape
        images = x.permute(0, 2, 1, 3, 4).reshape(k * m, c, h, w)
        states = text[list(indices)].repeat_interleave(m, dim=0)
        out = unet(images, t, encoder_hidden_states=states).sample
        return out.reshape(k, m, c, h, w).permute(0, 2, 1, 3, 4)

    def denoise(x, t, i):
        return denoise_batch(x, t, [i])

    return latents, windows, weights, denoise, denoise_batch


@torch.no_grad()
def ddim_loop(ctx, steps: int = 3, seed: int = 0, cancel_after=None):
    """A short DDIM sampling loop over the co_denoise the context picks; returns (latents, steps done)."""
    latents, windows, weights, _, denoise_batch = problem(seed)
    fuse = co_denoise_for(ctx)
    scheduler = tiny_scheduler()
    scheduler.set_timesteps(steps)
    if ctx is not None and cancel_after is not None:
        calls = [0]

        def local_cancel():  # this rank's "user pressed cancel" after a few model calls
            calls[0] += 1
            return calls[0] > cancel_after

        ctx.watch_cancel(local_cancel)
    done = 0
    for t in scheduler.timesteps:
        if ctx is not None and ctx.is_cancelled():
            raise Cancelled("The job was cancelled.")
        out = fuse(latents, t, windows, weights, denoise_batch=denoise_batch, windows_per_call=2)
        latents = scheduler.step(out, t, latents).prev_sample
        done += 1
    return latents, done


@torch.no_grad()
def evaluations(ctx):
    """One fused evaluation three ways: per-window denoise, stacked denoise_batch, frames on dim 1."""
    latents, windows, weights, denoise, denoise_batch = problem()
    fuse = co_denoise_for(ctx)
    return {
        "per_window": fuse(latents, 500, windows, weights, denoise),
        "batched": fuse(latents, 500, windows, weights, denoise_batch=denoise_batch, windows_per_call=2),
        "frames_on_1": fuse(latents.movedim(2, 1), 500, windows, weights, denoise_batch=denoise_batch,
                            windows_per_call=3, frame_dim=1),
    }


def reproduce(ctx, cancel_rank=None):
    """Rank job: evaluations + a 3-step DDIM loop; optionally a cancel on one rank during a second loop."""
    result = dict(evaluations(ctx), ddim=ddim_loop(ctx)[0], pid=os.getpid())
    if cancel_rank is not None:
        try:
            ddim_loop(ctx, steps=3, cancel_after=4 if ctx.rank == cancel_rank else None)
            result["cancelled_at"] = None
        except Cancelled:
            result["cancelled_at"] = ctx.is_cancelled()
        ctx.watch_cancel(None)
        result["after_cancel"] = evaluations(ctx)["batched"]  # the group still works after a cancel
    return result


def fail(ctx, pid_dir: str, how: str, bad_rank: int = 1):
    """Rank job: `bad_rank` raises (or dies outright) in its second model call; the others are healthy."""
    Path(pid_dir, f"rank{ctx.rank}.pid").write_text(str(os.getpid()))
    latents, windows, weights, _, denoise_batch = problem()
    calls = [0]

    def flaky(x, t, indices):
        calls[0] += 1
        if ctx.rank == bad_rank and calls[0] == 2:
            if how == "exit":
                os._exit(3)
            raise RuntimeError(f"boom on rank {ctx.rank}")
        return denoise_batch(x, t, indices)

    with torch.no_grad():
        return co_denoise_for(ctx)(latents, 500, windows, weights, denoise_batch=flaky)


def cancel_everywhere(ctx):
    """Rank job: rank 0 is cancelled during the first step; every rank lets Cancelled out."""
    return ddim_loop(ctx, steps=2, cancel_after=0 if ctx.rank == 0 else None)


def flaky_job(settings, out_dir, progress=None, is_cancelled=None, models=None):
    """A job function (worker signature) whose rank 1 raises in the second step of a real sampling
    loop; the plan it builds is window-parallel only because the rank joined a group (plan.parallel)."""
    from genl.distributed import current
    from genl.plan import CoDenoisePlan
    from genl.sampling import co_denoise_sample

    ctx = current()
    Path(out_dir, f"rank{ctx.rank}.pid").write_text(str(os.getpid()))
    latents, _, _, _, denoise_batch = problem()
    plan = CoDenoisePlan(num_frames=FRAMES, clip_length=CLIP, stride=STRIDE, weights="pyramid")
    assert plan.parallel is ctx
    calls = [0]

    def denoise(x, t, windows):
        calls[0] += 1
        if ctx.rank == 1 and calls[0] == 4:  # rank 1 has 3 of the 6 windows: its first call of step 2
            raise RuntimeError("boom on rank 1")
        return denoise_batch(x, t, list(range(len(windows))))

    scheduler = tiny_scheduler()
    scheduler.set_timesteps(3)
    with torch.no_grad():
        co_denoise_sample(scheduler, latents, scheduler.timesteps, plan, denoise, callback=progress,
                          is_cancelled=is_cancelled)
    return {"video": "never written"}
