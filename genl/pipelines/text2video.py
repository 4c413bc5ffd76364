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

from ..codenoise import make_windows, window_weights
from ..sampling import co_denoise_sample
from ..timeline import Timeline
from .common import (
    LongVideoPipelineBase,
    LongVideoOutput,
    decode_latents,
    default_windows_per_call,
    guided,
    initial_noise,
    timeline_conditions,
    window_text,
)


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
        clip_length: int = 16,
        stride: int = 4,
        weights: str = "flat",
        loop: bool = False,
        seed: int = 0,
        windows_per_call: Optional[int] = None,
        interpolation: str = "linear",
        per_frame_text: bool = False,
        callback: Optional[Callable] = None,
        is_cancelled: Optional[Callable[[], bool]] = None,
        decode_chunk: int = 8,
    ) -> LongVideoOutput:
        device, dtype = self.unet.device, self.unet.dtype
        use_cfg = guidance_scale > 1.0
        timeline = timeline.validate(num_frames)
        per_clip_states = isinstance(self.unet, UNet3DConditionModel)  # it repeats states over frames itself
        if per_clip_states and per_frame_text:
            raise ValueError("UNet3D text-to-video models take one text condition per clip, not per frame.")

        # 1. windows F_i and weights W_i
        windows = make_windows(num_frames, clip_length, stride, loop=loop)
        fusion = [window_weights(weights, clip_length)] * len(windows)

        # 2. text conditions c^i per window (or per frame)
        text = timeline_conditions(self.tokenizer, self.text_encoder, timeline, windows, num_frames,
                                   device=device, dtype=dtype, use_cfg=use_cfg, per_frame=per_frame_text,
                                   interpolation=interpolation)

        # 3. the long noise v_T
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        shape = (1, self.unet.config.in_channels, num_frames,
                 height // self.vae_scale_factor, width // self.vae_scale_factor)
        latents = initial_noise(shape, seed, device, torch.float32, self.scheduler.init_noise_sigma)

        # 4. one short-video model call per stack of clips
        def denoise_batch(x, t, indices):
            if per_clip_states:
                cond = text.cond[list(indices)]
                uncond = text.uncond[list(indices)] if use_cfg else None
            else:
                cond, uncond = window_text(text, windows, indices, num_frames, clip_length)
            x = x.to(dtype)
            if use_cfg:
                x, states = torch.cat([x, x]), torch.cat([uncond, cond])
            else:
                states = cond
            out = self.unet(x, t, encoder_hidden_states=states).sample
            return guided(out, guidance_scale) if use_cfg else out

        per_call = windows_per_call or default_windows_per_call(device, clip_length, height, width, use_cfg, dtype)
        latents = co_denoise_sample(self.scheduler, latents, self.scheduler.timesteps, windows, fusion,
                                    denoise_batch, windows_per_call=per_call, callback=callback,
                                    is_cancelled=is_cancelled)

        # 5. decode a few frames at a time
        frames = decode_latents(self.vae, latents, decode_chunk, is_cancelled, callback)
        return LongVideoOutput(frames=frames, latents=latents)
