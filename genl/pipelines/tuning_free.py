"""Text -> long video, tuning-free, on a plain image model (the cheapest path).

Every frame starts from the same noise (optionally shifted a little each frame, as Text2Video-Zero's motion
dynamics do, so the content drifts), an image UNet denoises clips with bi-directional cross-frame attention
so frames share appearance, each frame follows the prompt timeline, and co-denoising makes clips agree.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..attention import set_cross_frame_attention
from ..progress import Progress
from ..sampling import co_denoise_sample
from ..settings import ATTENTION, CoDenoiseSettings
from ..timeline import Timeline
from .common import (
    LongVideoOutput,
    LongVideoPipelineBase,
    decode_latents,
    image_unet_denoiser,
    make_plan,
    pipeline_controls,
    shared_noise,
    timeline_conditions,
)


class LongTuningFreePipeline(LongVideoPipelineBase):
    """Image-model long video. Components: vae, text_encoder, tokenizer, unet (UNet2DConditionModel), scheduler."""


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
        attention: str = ATTENTION,
        motion=(0.0, 0.0),
        noise_share: float = 1.0,
        control_frames: Optional[np.ndarray] = None,
        control_scale: float = 1.0,
        controls: Sequence = (),
        callback: Optional[Progress] = None,
        is_cancelled: Optional[Callable[[], bool]] = None,
        decode_chunk: int = 8,
    ) -> LongVideoOutput:
        """codenoise: M, S, fusion weights, loop, windows per call, prompt interpolation and transition width.
        controls: genl.controlnets.Control list (several ControlNets); control_frames/control_scale: maps for
        the pipeline's own ControlNet (one more control, active over the whole schedule)."""
        codenoise = codenoise or CoDenoiseSettings()
        device, dtype = self.unet.device, self.unet.dtype
        use_cfg = guidance_scale > 1.0
        timeline = timeline.validate(num_frames)

        plan = make_plan(self, codenoise, num_frames, height, width, use_cfg, attention)
        set_cross_frame_attention(self.unet, plan.attention, plan.clip_length)

        # an image model sees frames one by one, so each frame gets its own interpolated condition
        text = timeline_conditions(self.tokenizer, self.text_encoder, timeline, plan, device=device, dtype=dtype,
                                   use_cfg=use_cfg, per_frame=True, interpolation=codenoise.interpolation,
                                   transition=codenoise.transition_frames)

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        shape = (1, self.unet.config.in_channels, num_frames,
                 height // self.vae_scale_factor, width // self.vae_scale_factor)
        latents = shared_noise(shape, seed, device, self.scheduler.init_noise_sigma, motion, noise_share)

        # ControlNets on a reference video's pose / depth / edge maps, summed; each with its start/end
        controls = pipeline_controls(self, controls, control_frames, control_scale, num_frames)
        denoise = image_unet_denoiser(self.unet, text, num_frames, guidance_scale, controls,
                                      self.scheduler.timesteps)
        latents = co_denoise_sample(self.scheduler, latents, self.scheduler.timesteps, plan, denoise,
                                    callback=callback, is_cancelled=is_cancelled)

        frames = decode_latents(self.vae, latents, decode_chunk, is_cancelled, callback)
        return LongVideoOutput(frames=frames, latents=latents)
