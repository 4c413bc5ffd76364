"""Pieces every long-video pipeline shares: text conditions, noise, VAE in/out, batching budget.

Kept free of any one pipeline so each pipeline file reads top to bottom as its algorithm.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from diffusers import DiffusionPipeline

from ..sampling import check_cancel
from ..timeline import Timeline, mix_embeddings


class LongVideoPipelineBase(DiffusionPipeline):
    """Components as in diffusers (vae, text_encoder, tokenizer, unet, scheduler), passed in, never created."""

    def __init__(self, vae, text_encoder, tokenizer, unet, scheduler, controlnet=None):
        super().__init__()
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                              scheduler=scheduler, controlnet=controlnet)
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)


def control_images(pipe, frames: Optional[np.ndarray], num_frames: int) -> Optional[torch.Tensor]:
    """(F, H, W, 3) uint8 conditioning frames -> (F, 3, H, W) in [0, 1] for the pipeline's ControlNet."""
    if frames is None:
        return None
    if getattr(pipe, "controlnet", None) is None:
        raise ValueError("Control frames were given but no ControlNet is loaded: choose a ControlNet model.")
    if len(frames) != num_frames:
        raise ValueError(f"The control video has {len(frames)} frames but the video has {num_frames}.")
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    return (x.float() / 255.0).to(device=pipe.unet.device, dtype=pipe.controlnet.dtype)


@dataclass
class LongVideoOutput:
    frames: np.ndarray  # (F, H, W, 3) uint8
    latents: torch.Tensor  # (1, C, F, h, w) final clean latents


@dataclass
class TextConditions:
    """Per-window (or per-frame) text embeddings for the conditional and unconditional CFG halves."""

    cond: torch.Tensor  # (R, tokens, dim), R = windows or frames
    uncond: Optional[torch.Tensor]  # same shape, None when CFG is off
    per_frame: bool


@torch.no_grad()
def encode_text(tokenizer, text_encoder, prompts: list[str], device) -> torch.Tensor:
    """CLIP-style text features (P, tokens, dim) for a list of prompts."""
    ids = tokenizer(
        prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
        return_tensors="pt",
    ).input_ids.to(device)
    return text_encoder(ids)[0]


def timeline_conditions(
    tokenizer, text_encoder, timeline: Timeline, windows, num_frames: int, *, device, dtype,
    use_cfg: bool, per_frame: bool = False, interpolation: str = "linear", transition: int = 0,
) -> TextConditions:
    """Encode each distinct prompt once, then mix per window (paper) or per frame (image models)."""
    pairs = timeline.prompts()
    pos = encode_text(tokenizer, text_encoder, [p for p, _ in pairs], device)
    if per_frame:
        weights = timeline.frame_weights(num_frames, transition)
    else:
        weights = timeline.window_weights(windows, num_frames)
    cond = mix_embeddings(pos, weights, interpolation).to(dtype)
    uncond = None
    if use_cfg:
        neg = encode_text(tokenizer, text_encoder, [n for _, n in pairs], device)
        uncond = mix_embeddings(neg, weights, interpolation).to(dtype)
    return TextConditions(cond, uncond, per_frame)


def window_text(cond: TextConditions, windows, indices, num_frames: int, frames_per_window: int):
    """Encoder states for a stack of windows: (k*M, tokens, dim) per CFG half, frames contiguous per clip."""
    def pick(emb):
        if cond.per_frame:
            rows = [torch.arange(windows[i][0], windows[i][1]) % num_frames for i in indices]
            return emb[torch.cat(rows).to(emb.device)]
        return emb[list(indices)].repeat_interleave(frames_per_window, dim=0)

    return pick(cond.cond), (pick(cond.uncond) if cond.uncond is not None else None)


def guided(out: torch.Tensor, guidance: float) -> torch.Tensor:
    """Classifier-free guidance on a batch stacked as [unconditional; conditional]."""
    uncond, cond = out.chunk(2)
    return uncond + guidance * (cond - uncond)


def initial_noise(shape, seed: int, device, dtype, init_sigma: float = 1.0) -> torch.Tensor:
    """Gaussian noise drawn on the CPU from `seed`, so a seed means the same video on any device."""
    gen = torch.Generator("cpu").manual_seed(int(seed))
    return (torch.randn(shape, generator=gen, dtype=torch.float32) * init_sigma).to(device=device, dtype=dtype)


@torch.no_grad()
def decode_latents(vae, latents: torch.Tensor, chunk: int = 8, is_cancelled=None, callback=None) -> np.ndarray:
    """(1, C, F, h, w) latents -> (F, H, W, 3) uint8, a few frames at a time so long videos fit."""
    frames = latents[0].permute(1, 0, 2, 3)  # (F, C, h, w)
    scale = vae.config.scaling_factor
    out = []
    for i in range(0, frames.shape[0], chunk):
        check_cancel(is_cancelled)
        part = frames[i:i + chunk].to(vae.dtype) / scale
        image = vae.decode(part).sample.float()
        out.append(((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu())
        if callback is not None:
            callback("decode", min(i + chunk, frames.shape[0]), frames.shape[0], None)
    return torch.cat(out).numpy()


@torch.no_grad()
def encode_frames(vae, frames: np.ndarray, device, chunk: int = 8) -> torch.Tensor:
    """(F, H, W, 3) uint8 -> (1, C, F, h, w) latents (posterior mean: deterministic for inversion)."""
    out = []
    for i in range(0, len(frames), chunk):
        x = torch.from_numpy(np.ascontiguousarray(frames[i:i + chunk])).to(device)
        x = (x.permute(0, 3, 1, 2).to(vae.dtype) / 127.5) - 1.0
        out.append(vae.encode(x).latent_dist.mean * vae.config.scaling_factor)
    return torch.cat(out).permute(1, 0, 2, 3).unsqueeze(0)


def default_windows_per_call(device, clip_length: int, height: int, width: int, use_cfg: bool,
                             dtype=torch.float16, fraction: float = 0.5, max_windows: int = 8) -> int:
    """How many clips to stack per model call: as many as half the free GPU memory allows.

    Activation memory of SD-1.5-sized UNets grows about linearly with frames x pixels: about 0.065 GiB per
    frame at 512x512 in fp16 with SDPA on an H100 (bench/results; we budget 0.09 for headroom). Throughput
    stops growing past ~8 clips per call there, so more only costs memory. CPUs get a small fixed budget.
    """
    frames_per_window = clip_length * (2 if use_cfg else 1)
    device = torch.device(device)
    if device.type != "cuda":
        return max(1, 32 // frames_per_window)
    free, _ = torch.cuda.mem_get_info(device)
    per_frame = 0.09 * (height * width) / (512 * 512) * (2 if dtype == torch.float32 else 1) * 2**30
    budget_frames = int(free * fraction / per_frame)
    return max(1, min(max_windows, budget_frames // frames_per_window))


def image_unet_denoiser(unet, text: TextConditions, windows, num_frames: int, clip_length: int,
                        guidance_scale: float, controlnet=None, control: Optional[torch.Tensor] = None,
                        control_scale: float = 1.0):
    """denoise_batch for an image UNet: clips (k, C, M, h, w) become k*M images, frames contiguous per clip
    (the layout the cross-frame attention processor expects), CFG halves stacked [uncond; cond]. With a
    ControlNet, each frame's control image (control: (F, 3, H, W)) adds its residuals to the UNet."""
    use_cfg = text.uncond is not None

    def denoise_batch(x, t, indices):
        k, c, m, h, w = x.shape
        images = x.permute(0, 2, 1, 3, 4).reshape(k * m, c, h, w).to(unet.dtype)
        cond, uncond = window_text(text, windows, indices, num_frames, clip_length)
        if use_cfg:
            images, states = torch.cat([images, images]), torch.cat([uncond, cond])
        else:
            states = cond
        extra = {}
        if controlnet is not None and control is not None:
            rows = torch.cat([torch.arange(windows[i][0], windows[i][1]) % num_frames for i in indices])
            hint = control[rows.to(control.device)]
            hint = torch.cat([hint, hint]) if use_cfg else hint
            down, mid = controlnet(images.to(controlnet.dtype), t, encoder_hidden_states=states.to(controlnet.dtype),
                                   controlnet_cond=hint, conditioning_scale=control_scale, return_dict=False)
            extra = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        out = unet(images, t, encoder_hidden_states=states, **extra).sample
        if use_cfg:
            out = guided(out, guidance_scale)
        return out.reshape(k, m, c, h, w).permute(0, 2, 1, 3, 4)

    return denoise_batch
