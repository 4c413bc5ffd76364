"""DDIM inversion of a long video, co-denoised with the same clips as sampling (paper Sec. 3.1).

x_{t+1}/sqrt(a_{t+1}) = x_t/sqrt(a_t) + (sqrt((1-a_{t+1})/a_{t+1}) - sqrt((1-a_t)/a_t)) eps(x_t, t)
with eps the *fused* prediction over all clips, so the inverted noise of overlapping clips agrees and
deterministic DDIM sampling from it with the source prompt walks back to the video.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Optional

import torch

from .plan import CoDenoisePlan
from .prediction import eps_from_output
from .progress import check_cancel, report
from .sampling import WindowDenoise, co_denoise_step, rank_view


def inversion_timesteps(scheduler, num_inference_steps: int, strength: float = 1.0) -> list[int]:
    """The DDIM sampling timesteps (high to low) that inversion walks up, cut to `strength` of the schedule."""
    scheduler.set_timesteps(num_inference_steps)
    steps = [int(t) for t in scheduler.timesteps]
    keep = max(1, int(round(len(steps) * strength)))
    return steps[len(steps) - keep:]


@torch.no_grad()
def ddim_invert(
    latents: torch.Tensor,
    timesteps: list[int],
    alphas_cumprod: torch.Tensor,
    plan: CoDenoisePlan,
    denoise: WindowDenoise,
    *,
    prediction_type: str = "epsilon",
    final_alpha: Optional[float] = None,
    callback: Optional[Callable] = None,
    is_cancelled: Optional[Callable[[], bool]] = None,
    trajectory: Optional[list] = None,
) -> torch.Tensor:
    """Clean latents x_0 -> noisy x_T at timesteps[0] (the first sampling timestep).

    `trajectory`, when given, receives every level on the CPU: [x_0, x at timesteps[-1], ..., x_T], so
    trajectory[n - k] is the source at the level of timesteps[k] (n = len(timesteps)); masked editing uses it.

    `timesteps` are the sampling timesteps, high to low; inversion climbs them in reverse. The model is
    evaluated at the current (less noisy) point with the next timestep, as in diffusers' DDIMInverseScheduler.
    """
    plan = plan.for_steps(len(timesteps))
    _, callback, is_cancelled = rank_view(plan, callback, is_cancelled)  # window-parallel in a group of ranks
    acp = alphas_cumprod.to(torch.float64)
    up = list(reversed(timesteps))
    x = latents.to(torch.float32)
    prev_alpha = torch.tensor(final_alpha if final_alpha is not None else float(acp[0]), dtype=torch.float64)
    if trajectory is not None:
        trajectory.append(x.detach().cpu())
    for i, t in enumerate(up):
        check_cancel(is_cancelled)
        alpha = acp[int(t)]
        # the windows sampling uses at this timestep (step n-1-i): a schedule that changes over the run
        # inverts the source with the clips it will later denoise it with
        out = co_denoise_step(x, t, plan, len(up) - 1 - i, denoise, is_cancelled)
        eps = eps_from_output(out.to(torch.float64), x.to(torch.float64), prev_alpha, prediction_type)
        x0 = (x.to(torch.float64) - (1 - prev_alpha).sqrt() * eps) / prev_alpha.sqrt()
        x = (alpha.sqrt() * x0 + (1 - alpha).sqrt() * eps).to(torch.float32)
        prev_alpha = alpha
        if trajectory is not None:
            trajectory.append(x.detach().cpu())
        if callback is not None:
            report(callback, "inversion", i + 1, len(up), x0.to(torch.float32))
    check_cancel(is_cancelled)
    return x


def inversion_cache_key(video_hash: str, model: str, settings: dict) -> str:
    """Same video, model and inversion settings -> same key (the settings are canonical JSON)."""
    blob = json.dumps({"video": video_hash, "model": model, "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class InversionCache:
    """Inverted noise on disk by key, so re-editing the same clip skips the inversion."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"inv-{key}.pt"

    def load(self, key: str):
        p = self.path(key)
        if not p.exists():
            return None
        try:
            return torch.load(p, map_location="cpu", weights_only=True)
        except Exception:  # a truncated file from a killed job is just a miss
            return None

    def save(self, key: str, value) -> None:
        """Any tensor or dict/list of tensors; written to a temp file first so a killed job leaves no half file."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path(key).with_suffix(".tmp")
        torch.save(value, tmp)
        tmp.replace(self.path(key))
