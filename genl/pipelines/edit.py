"""Tuning-free long video editing on Stable Diffusion 1.x/2.x (paper Sec. 4, following Pix2Video).

video -> latents (VAE, chunked) -> co-denoised DDIM inversion under the source prompt -> co-denoised
sampling under the target timeline, with bi-directional cross-frame attention in both passes so frames
share appearance. Optional Pix2Video-style adjacent-frame distance penalty keeps consecutive frames close.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..attention import set_cross_frame_attention
from ..conditions.mask_settings import MaskSettings
from ..conditions.masks import feather
from ..inversion import InversionCache, ddim_invert, inversion_cache_key, inversion_timesteps
from ..prediction import output_from_x0, x0_from_output
from ..progress import Progress, report
from ..sampling import co_denoise_sample, make_scheduler
from ..settings import ATTENTION, CoDenoiseSettings
from ..timeline import Timeline
from .common import (
    LongVideoOutput,
    LongVideoPipelineBase,
    decode_latents,
    encode_frames,
    image_unet_denoiser,
    make_plan,
    pipeline_controls,
    timeline_conditions,
)


def adjacent_frame_penalty(scheduler, strength: float, iterations: int = 1):
    """x0_hook: gradient steps on (strength/2) sum_j ||x0_j - x0_{j-1}||^2 taken on the x0 estimate.

    Pix2Video back-propagates this distance through the UNet; stepping on x0 directly gives the same
    smoothing direction at no extra model cost (a temporal Laplacian on the prediction).
    """
    kind = scheduler.config.prediction_type

    def hook(out, x, t):
        a = scheduler.alphas_cumprod.to(x.device)[int(t)].float()
        x, out = x.float(), out.float()
        x0 = x0_from_output(out, x, a, kind)
        for _ in range(iterations):
            padded = torch.cat([x0[:, :, :1], x0, x0[:, :, -1:]], dim=2)
            laplacian = 2 * x0 - padded[:, :, :-2] - padded[:, :, 2:]
            x0 = x0 - min(strength, 0.25) * laplacian  # <= 1/4 keeps the explicit step stable
        return output_from_x0(x0, x, a, kind)

    return hook


def latent_mask(masks: np.ndarray, latent_hw: tuple[int, int], device) -> torch.Tensor:
    """(F, H, W) object masks -> (1, 1, F, h, w) in [0, 1]: the share of each latent cell the object covers."""
    m = torch.from_numpy(np.ascontiguousarray(masks)).float().unsqueeze(1)  # (F, 1, H, W)
    m = torch.nn.functional.adaptive_avg_pool2d(m, latent_hw)
    return m.permute(1, 0, 2, 3).unsqueeze(0).to(device)


def source_outside_mask(levels: list, keep: torch.Tensor, num_steps: int):
    """step_hook for masked editing: outside `keep` the latents become the source at the same noise level.
    After step i the latents sit at the level of timesteps[i + 1], which inversion stored as levels[n - i - 1]."""

    def paste(x, i):
        src = levels[num_steps - i - 1].to(device=x.device, dtype=x.dtype)
        return keep * x + (1 - keep) * src

    return paste


class LongVideoEditPipeline(LongVideoPipelineBase):
    """Components: vae, text_encoder, tokenizer, unet (UNet2DConditionModel), scheduler, optional controlnet."""

    @torch.no_grad()
    def invert(self, frames: np.ndarray, source: Timeline, *, num_inference_steps: int = 50,
               codenoise: Optional[CoDenoiseSettings] = None, attention: str = ATTENTION, strength: float = 1.0,
               cache: Optional[InversionCache] = None, cache_id: Optional[dict] = None, callback=None,
               is_cancelled=None, keep_trajectory: bool = False):
        """Noise that DDIM sampling under the source prompt maps back to `frames`. Cached by `cache_id`.

        With keep_trajectory, returns (noise, levels) where levels[k] is the source at inversion level k
        (levels[0] = clean latents), which masked editing pastes back outside the mask.
        """
        codenoise = codenoise or CoDenoiseSettings()
        device, dtype = self.unet.device, self.unet.dtype
        num_frames = len(frames)
        key = inversion_cache_key(cache_id["video"], cache_id["model"], dict(
            steps=num_inference_steps, M=codenoise.clip_length, S=codenoise.stride, weights=codenoise.weights,
            attention=attention, strength=strength, source=source.to_json(), size=list(frames.shape),
            dtype=str(dtype), trajectory=keep_trajectory,
        )) if cache is not None and cache_id else None
        if key is not None and (hit := cache.load(key)) is not None:
            report(callback, "inversion", 1, 1)
            return (hit["noise"].to(device), hit["levels"]) if keep_trajectory else hit["noise"].to(device)

        inversion = dataclasses.replace(codenoise, loop=False)  # inversion never wraps round
        plan = make_plan(self, inversion, num_frames, frames.shape[1], frames.shape[2], False, attention)
        set_cross_frame_attention(self.unet, plan.attention, plan.clip_length)
        text = timeline_conditions(self.tokenizer, self.text_encoder, source.validate(num_frames), plan,
                                   device=device, dtype=dtype, use_cfg=False, per_frame=True)
        denoise = image_unet_denoiser(self.unet, text, num_frames, 1.0)
        ddim = make_scheduler("ddim", self.scheduler.config)
        timesteps = inversion_timesteps(ddim, num_inference_steps, strength)
        latents = encode_frames(self.vae, frames, device).float()
        levels = [] if keep_trajectory else None
        noise = ddim_invert(latents, timesteps, ddim.alphas_cumprod, plan, denoise,
                            prediction_type=ddim.config.prediction_type, final_alpha=float(ddim.final_alpha_cumprod),
                            callback=callback, is_cancelled=is_cancelled, trajectory=levels)
        if key is not None:
            cache.save(key, {"noise": noise.cpu(), "levels": [lv.half() for lv in levels] if levels else []})
        return (noise, levels) if keep_trajectory else noise

    @torch.no_grad()
    def __call__(
        self,
        frames: np.ndarray,
        source: Timeline,
        target: Timeline,
        num_inference_steps: int = 50,
        guidance_scale: float = 7.5,
        codenoise: Optional[CoDenoiseSettings] = None,
        attention: str = ATTENTION,
        strength: float = 1.0,
        smoothness: float = 0.0,
        scheduler: str = "ddim",
        masks: Optional[np.ndarray] = None,
        mask_feather: float = MaskSettings.feather,
        control_frames: Optional[np.ndarray] = None,
        control_scale: float = 1.0,
        controls: Sequence = (),
        cache: Optional[InversionCache] = None,
        cache_id: Optional[dict] = None,
        callback: Optional[Progress] = None,
        is_cancelled: Optional[Callable[[], bool]] = None,
        decode_chunk: int = 8,
    ) -> LongVideoOutput:
        """masks: (F, H, W) bool, where the edit may change the video (edit anything); elsewhere the source
        is pasted back at every step from its inversion trajectory; mask_feather: px Gaussian sigma of the band
        outside the mask where the final pixels blend from edited to source. control_frames: (F, H, W, 3) uint8
        conditioning images (e.g. edge maps) for the pipeline's ControlNet; controls: genl.controlnets.Control
        list (e.g. the source's pose and depth), their start/end measured over the resampled steps."""
        codenoise = dataclasses.replace(codenoise or CoDenoiseSettings(), loop=False)  # a source video never loops
        device, dtype = self.unet.device, self.unet.dtype
        num_frames = len(frames)
        use_cfg = guidance_scale > 1.0
        target = target.validate(num_frames)
        sampler = make_scheduler(scheduler, self.scheduler.config)
        if masks is not None and float(sampler.init_noise_sigma) > 1.0:
            raise ValueError("Masked editing needs a DDIM-like scheduler (ddim, dpm++, unipc), not Euler.")

        # 1. invert the source video (cached), keeping every level when the edit is masked
        inverted = self.invert(frames, source, num_inference_steps=num_inference_steps, codenoise=codenoise,
                               attention=attention, strength=strength, cache=cache, cache_id=cache_id,
                               callback=callback, is_cancelled=is_cancelled, keep_trajectory=masks is not None)
        noise, levels = inverted if masks is not None else (inverted, None)

        # 2. co-denoised sampling under the target timeline, from the inverted noise
        plan = make_plan(self, codenoise, num_frames, frames.shape[1], frames.shape[2], use_cfg, attention)
        set_cross_frame_attention(self.unet, plan.attention, plan.clip_length)
        text = timeline_conditions(self.tokenizer, self.text_encoder, target, plan, device=device, dtype=dtype,
                                   use_cfg=use_cfg, per_frame=True, interpolation=codenoise.interpolation)
        sampler.set_timesteps(num_inference_steps, device=device)
        start = len(sampler.timesteps) - max(1, int(round(len(sampler.timesteps) * strength)))
        timesteps = sampler.timesteps[start:]
        if hasattr(sampler, "set_begin_index"):
            sampler.set_begin_index(start)
        hook = adjacent_frame_penalty(sampler, smoothness) if smoothness > 0 else None
        controls = pipeline_controls(self, controls, control_frames, control_scale, num_frames)
        denoise = image_unet_denoiser(self.unet, text, num_frames, guidance_scale, controls, timesteps)
        latents = noise.to(device)
        if float(sampler.init_noise_sigma) > 1.0:  # sigma-form schedulers (Euler): x = x_VP / sqrt(a_t)
            latents = latents / sampler.alphas_cumprod[int(timesteps[0])].sqrt().to(device)
        paste = None
        if masks is not None:
            paste = source_outside_mask(levels, latent_mask(masks, tuple(latents.shape[-2:]), device), len(timesteps))
        latents = co_denoise_sample(sampler, latents, timesteps, plan, denoise, callback=callback,
                                    is_cancelled=is_cancelled, x0_hook=hook, step_hook=paste)
        out = decode_latents(self.vae, latents, decode_chunk, is_cancelled, callback)
        if masks is not None:  # the VAE round trip blurs what the mask kept: paste the source pixels back
            out = composite(out, frames, feather(masks, mask_feather))
        return LongVideoOutput(frames=out, latents=latents)


def composite(edited: np.ndarray, source: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Edited pixels where alpha (F, H, W) is 1, source pixels where it is 0, blended in between. alpha is the
    feathered mask (genl.conditions.masks.feather: 1 over the whole object, fading outside it), the same soft mask
    the mask video shows."""
    a = np.asarray(alpha, np.float32)[..., None]
    return (a * edited + (1 - a) * source).round().astype(np.uint8)
