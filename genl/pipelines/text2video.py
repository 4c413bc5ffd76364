"""Text -> long video with a pretrained text-to-video model: AnimateDiff (SD-1.5 + motion module) or the
UNet3D family (ModelScope / zeroscope), which takes one text condition per clip instead of per frame.

Reads like diffusers' AnimateDiffPipeline: encode prompts -> noise -> loop over timesteps -> decode, with
`co_denoise` where the single UNet call would be, so a 16-frame model makes videos of any length and each
clip follows its own part of the prompt timeline (paper Sec. 3.2, "Pretrained Text-to-Video").
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from diffusers import UNet3DConditionModel

from ..motion_windows import unwindow_motion_modules, window_motion_modules
from ..plan import CoDenoisePlan, require_full_length_clips
from ..progress import Progress
from ..sampling import co_denoise_sample
from ..settings import CoDenoiseSettings
from ..timeline import Timeline
from .common import (
    LongVideoOutput,
    LongVideoPipelineBase,
    decode_latents,
    frames_per_call,
    guided,
    initial_noise,
    make_plan,
    shared_noise,
    timeline_conditions,
)

MOTION_FALLBACK = ("{frames} frames x {halves} guidance halves in one model call would not fit in this GPU's free "
                   "memory, so clips were fused on the model outputs instead of inside the motion modules.")


def motion_fusion_fits(unet, num_frames: int, height: int, width: int, use_cfg: bool) -> bool:
    """Fusion inside motion modules runs the spatial layers on the whole video in one call: N x CFG frames."""
    budget = frames_per_call(unet.device, height, width, unet.dtype)
    return budget is None or num_frames * (2 if use_cfg else 1) <= budget


def sample_motion_fused(unet, scheduler, latents, timesteps, plan: CoDenoisePlan, denoise, *, callback=None,
                        is_cancelled=None, motion_windows_per_call: Optional[int] = None):
    """`co_denoise_sample` with the clips F_i fused inside every motion module (genl.motion_windows): the
    sampler sees one whole-video window per step and the motion modules get `plan.windows_at(step)`, W_i."""
    whole = CoDenoisePlan(num_frames=plan.num_frames, clip_length=plan.num_frames, stride=plan.num_frames)
    plan = plan.for_steps(len(timesteps))
    motion = window_motion_modules(unet, motion_windows_per_call)
    steps = iter(range(len(timesteps)))

    def denoise_whole(x, t, windows):  # one model call per step, in step order
        step = next(steps)
        motion.set(plan.windows_at(step), plan.weights_at(step))
        return denoise(x, t, windows)

    try:
        return co_denoise_sample(scheduler, latents, timesteps, whole, denoise_whole, callback=callback,
                                 is_cancelled=is_cancelled)
    finally:
        unwindow_motion_modules(unet)


class LongAnimateDiffPipeline(LongVideoPipelineBase):
    """Co-denoised text-to-video. Components as in diffusers: vae, text_encoder, tokenizer, scheduler and a
    unet that is a UNetMotionModel (AnimateDiff) or a UNet3DConditionModel (ModelScope/zeroscope)."""


    @torch.no_grad()
    def __call__(
        self,
        timeline: Timeline,
        num_frames: int = 64,
        height: int = 512,
        width: int = 512,
        num_inference_steps: int = 50,
        guidance_scale: float = 7.5,
        codenoise: Optional[CoDenoiseSettings] = None,
        seed: int = 0,
        per_frame_text: bool = False,
        callback: Optional[Progress] = None,
        is_cancelled: Optional[Callable[[], bool]] = None,
        decode_chunk: int = 8,
        noise_share: float = 0.0,
    ) -> LongVideoOutput:
        """codenoise: M, S, fusion weights, loop, windows per call, prompt interpolation (defaults: the paper's).
        noise_share: share of the initial noise common to every frame (0: independent frames, as trained)."""
        codenoise = codenoise or CoDenoiseSettings()
        device, dtype = self.unet.device, self.unet.dtype
        use_cfg = guidance_scale > 1.0
        timeline = timeline.validate(num_frames)
        per_clip_states = isinstance(self.unet, UNet3DConditionModel)  # it repeats states over frames itself
        if per_clip_states and per_frame_text:
            raise ValueError("UNet3D text-to-video models take one text condition per clip, not per frame.")

        # 1. the plan: windows F_i per step, weights W_i, clips per call; where clips are fused
        plan = make_plan(self, codenoise, num_frames, height, width, use_cfg)
        require_full_length_clips(plan.schedule)
        notices = []
        motion = codenoise.fusion == "motion"
        if motion and not motion_fusion_fits(self.unet, num_frames, height, width, use_cfg):
            motion = False
            notices.append(MOTION_FALLBACK.format(frames=num_frames, halves=2 if use_cfg else 1))
        per_frame_text = per_frame_text or motion  # one UNet call sees every frame: text per frame

        # 2. text conditions c^i per window (or per frame)
        text = timeline_conditions(self.tokenizer, self.text_encoder, timeline, plan, device=device, dtype=dtype,
                                   use_cfg=use_cfg, per_frame=per_frame_text, interpolation=codenoise.interpolation)

        # 3. the long noise v_T
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        shape = (1, self.unet.config.in_channels, num_frames,
                 height // self.vae_scale_factor, width // self.vae_scale_factor)
        if noise_share > 0:  # a layout common to all frames: fewer jumps, less motion (bench/quality_motion.py)
            latents = shared_noise(shape, seed, device, self.scheduler.init_noise_sigma, share=noise_share)
        else:
            latents = initial_noise(shape, seed, device, torch.float32, self.scheduler.init_noise_sigma)

        # 4. one short-video model call per stack of clips
        def denoise(x, t, windows):
            cond, uncond = text.clip_states(windows) if per_clip_states else text.frame_states(windows)
            x = x.to(dtype)
            if use_cfg:
                x, states = torch.cat([x, x]), torch.cat([uncond, cond])
            else:
                states = cond
            out = self.unet(x, t, encoder_hidden_states=states).sample
            return guided(out, guidance_scale) if use_cfg else out

        if motion:  # the UNet runs once per step on the whole video; its motion modules fuse plan's clips
            latents = sample_motion_fused(self.unet, self.scheduler, latents, self.scheduler.timesteps, plan, denoise,
                                          callback=callback, is_cancelled=is_cancelled)
        else:
            latents = co_denoise_sample(self.scheduler, latents, self.scheduler.timesteps, plan, denoise,
                                        callback=callback, is_cancelled=is_cancelled)

        # 5. decode a few frames at a time
        frames = decode_latents(self.vae, latents, decode_chunk, is_cancelled, callback)
        return LongVideoOutput(frames=frames, latents=latents, notices=notices)
