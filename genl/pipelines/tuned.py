"""Long video from a one-shot-tuned image model with clip identifiers (paper Sec. 4, Fig. 4).

The UNet was tuned on the clips F_i of a source video (genl/tuning); each clip has an identifier e^i.
Sampling co-denoises the whole long video; window i is guided by the paper's

    eps_hat = (1 + w) * eps(v_t^i, t, c^i, e^i) - w * eps(v_t^i, t, ∅, ∅),

with c^i from the (edited) timeline and e^i the identifier of the training clip the window covers (mixed
between the two nearest clips when windows and training clips differ). `use_identifiers=False` is the
paper's ablation (e^i replaced by ∅ in the conditional branch too). Start from random noise (the paper's
test) or from the source video's DDIM-inverted latents.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Callable, Optional

import numpy as np
import torch

from ..inversion import ddim_invert, inversion_timesteps
from ..plan import CoDenoisePlan, require_full_length_clips
from ..sampling import co_denoise_sample, make_scheduler
from ..timeline import Timeline
from .common import (
    LongVideoOutput,
    LongVideoPipelineBase,
    decode_latents,
    default_windows_per_call,
    encode_frames,
    initial_noise,
    timeline_conditions,
)


def identifier_guidance(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> torch.Tensor:
    """The paper's eps_hat = (1 + w) eps(c^i, e^i) - w eps(∅, ∅); w = guidance_scale - 1 in diffusers' terms."""
    return (1 + w) * eps_cond - w * eps_uncond


def identified_denoiser(unet, text, identifiers, identifier_of: Callable, guidance_scale: float):
    """The sampler's denoise(x, t, windows) for the tuned UNet: each window's frames get their text rows
    (text: TextConditions, per frame) plus identifier_of(window), (K, dim) or None = ∅; the unconditional
    half gets the negative text and ∅."""
    tokens = identifiers.tokens if identifiers is not None else 0

    def with_id(part, e):
        if tokens == 0:
            return part
        e = torch.zeros(tokens, part.shape[-1], device=part.device) if e is None else e
        return torch.cat([part, e.to(part).unsqueeze(0).expand(part.shape[0], -1, -1)], dim=1)

    def denoise(x, t, windows):
        k, c, m, h, w = x.shape
        images = x.permute(0, 2, 1, 3, 4).reshape(k * m, c, h, w).to(unet.dtype)
        halves = [text.frame_states([win]) for win in windows]
        cond = torch.cat([with_id(cd, identifier_of(win)) for (cd, _), win in zip(halves, windows)]).to(unet.dtype)
        if text.use_cfg:
            uncond = torch.cat([with_id(un, None) for _, un in halves]).to(unet.dtype)
            out = unet(torch.cat([images, images]), t, encoder_hidden_states=torch.cat([uncond, cond])).sample
            eps_uncond, eps_cond = out.chunk(2)
            out = identifier_guidance(eps_cond, eps_uncond, guidance_scale - 1.0)
        else:
            out = unet(images, t, encoder_hidden_states=cond).sample
        return out.reshape(k, m, c, h, w).permute(0, 2, 1, 3, 4)

    return denoise


class LongTunedPipeline(LongVideoPipelineBase):
    """Components as in diffusers plus `identifiers` (ClipIdentifiers); build with `from_tuning`."""

    def __init__(self, vae, text_encoder, tokenizer, unet, scheduler, identifiers=None, tuning: Optional[dict] = None):
        super().__init__(vae, text_encoder, tokenizer, unet, scheduler)
        self.identifiers = identifiers
        self.tuning = tuning or {}

    @classmethod
    def from_tuning(cls, folder, components: dict) -> "LongTunedPipeline":
        """Image-model components + a tuning folder; the UNet is copied, so cached components stay untouched."""
        from ..tuning.weights import load_tuned

        unet = copy.deepcopy(components["unet"])
        identifiers, meta = load_tuned(folder, unet)
        unet.eval()
        parts = {k: components[k] for k in ("vae", "text_encoder", "tokenizer", "scheduler")}
        return cls(unet=unet, identifiers=identifiers.to(unet.dtype), tuning=meta, **parts)

    def identifier_of(self, num_frames: int, mode: str = "linear", use_identifiers: bool = True) -> Callable:
        """window -> its e^i: its training clip's, or a mix of the two nearest (None = ∅); cached per window,
        since moving-window schedules ask for new windows as they go."""
        ids, cache = self.identifiers, {}
        if not use_identifiers or ids is None or len(ids) == 0:
            return lambda window: None

        def of(window):
            if window not in cache:
                with torch.no_grad():
                    cache[window] = ids.mixed(ids.for_window(window, num_frames, mode)).to(self.unet.device)
            return cache[window]

        return of

    @torch.no_grad()
    def invert(self, frames: np.ndarray, source: Timeline, plan, identifier_of, num_inference_steps: int,
               callback=None, is_cancelled=None) -> torch.Tensor:
        """DDIM-invert the source video through the tuned model, conditioned on (c^i, e^i)."""
        num_frames = len(frames)
        text = timeline_conditions(self.tokenizer, self.text_encoder, source.validate(num_frames), plan,
                                   device=self.unet.device, dtype=self.unet.dtype, use_cfg=False, per_frame=True)
        denoise = identified_denoiser(self.unet, text, self.identifiers, identifier_of, 1.0)
        ddim = make_scheduler("ddim", self.scheduler.config)
        latents = encode_frames(self.vae, frames, self.unet.device).float()
        return ddim_invert(latents, inversion_timesteps(ddim, num_inference_steps), ddim.alphas_cumprod, plan,
                           denoise, prediction_type=ddim.config.prediction_type,
                           final_alpha=float(ddim.final_alpha_cumprod), callback=callback, is_cancelled=is_cancelled)

    @torch.no_grad()
    def __call__(
        self,
        timeline: Timeline,
        num_frames: Optional[int] = None,
        height: int = 512,
        width: int = 512,
        num_inference_steps: int = 50,
        guidance_scale: float = 7.5,
        codenoise=None,
        use_identifiers: bool = True,
        identifier_mode: str = "linear",
        seed: int = 0,
        source_frames: Optional[np.ndarray] = None,
        source: Optional[Timeline] = None,
        callback: Optional[Callable] = None,
        is_cancelled: Optional[Callable[[], bool]] = None,
        decode_chunk: int = 8,
    ) -> LongVideoOutput:
        """codenoise: CoDenoiseSettings (M, S, W_i); defaults to the tuning's M and S. With `source_frames`
        (and the `source` timeline) sampling starts from their inversion, else from random noise."""
        from ..settings import CoDenoiseSettings

        device, dtype = self.unet.device, self.unet.dtype
        tuned = self.tuning.get("settings", {})
        cn = codenoise or CoDenoiseSettings(clip_length=tuned.get("clip_length", 16), stride=tuned.get("stride", 4))
        require_full_length_clips(cn.schedule)  # the tuning's temporal attention wants M-frame clips
        if source_frames is not None:
            num_frames = len(source_frames)
            height, width = source_frames.shape[1:3]
        num_frames = num_frames or self.tuning.get("num_frames", 64)
        timeline = timeline.validate(num_frames)
        use_cfg = guidance_scale > 1.0

        per_call = cn.windows_per_call or default_windows_per_call(device, cn.clip_length, height, width,
                                                                   use_cfg, dtype)
        plan = CoDenoisePlan.from_settings(cn, num_frames, windows_per_call=per_call)
        self._set_clip_length(cn.clip_length)
        identifier_of = self.identifier_of(num_frames, identifier_mode, use_identifiers)

        # 1. starting latents: random noise (Fig. 4 right) or the inverted source video
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        if source_frames is not None:
            src = source or Timeline.from_json(self.tuning["timeline"])
            inversion = CoDenoisePlan.from_settings(dataclasses.replace(cn, loop=False), num_frames,
                                                    windows_per_call=per_call)
            latents = self.invert(source_frames, src, inversion, identifier_of, num_inference_steps, callback,
                                  is_cancelled).to(device)
        else:
            shape = (1, self.unet.config.in_channels, num_frames, height // self.vae_scale_factor,
                     width // self.vae_scale_factor)
            latents = initial_noise(shape, seed, device, torch.float32, self.scheduler.init_noise_sigma)

        # 2. co-denoise the whole video; each window guided by (c^i, e^i) against (∅, ∅)
        text = timeline_conditions(self.tokenizer, self.text_encoder, timeline, plan, device=device, dtype=dtype,
                                   use_cfg=use_cfg, per_frame=True, interpolation=cn.interpolation,
                                   transition=cn.transition_frames)
        denoise = identified_denoiser(self.unet, text, self.identifiers, identifier_of, guidance_scale)
        latents = co_denoise_sample(self.scheduler, latents, self.scheduler.timesteps, plan, denoise,
                                    callback=callback, is_cancelled=is_cancelled)

        # 3. decode
        frames = decode_latents(self.vae, latents, decode_chunk, is_cancelled, callback)
        return LongVideoOutput(frames=frames, latents=latents)

    def _set_clip_length(self, clip_length: int) -> None:
        from ..attention import set_cross_frame_attention
        from ..tuning.temporal import set_clip_length

        set_clip_length(self.unet, clip_length)
        set_cross_frame_attention(self.unet, "bidirectional", clip_length)
