"""Pieces every long-video pipeline shares: text conditions, noise, VAE in/out, batching budget.

Kept free of any one pipeline so each pipeline file reads top to bottom as its algorithm.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from diffusers import DiffusionPipeline

from ..attention import cross_frame_processors, frame_layout
from ..codenoise import Window, window_frames
from ..motion_windows import check_fusion
from ..controlnets import control_residuals, unet_control_kwargs
from ..plan import CoDenoisePlan
from ..progress import check_cancel, report
from ..timeline import Timeline, mix_embeddings


class LongVideoPipelineBase(DiffusionPipeline):
    """Components as in diffusers (vae, text_encoder, tokenizer, unet, scheduler), passed in, never created."""

    def __init__(self, vae, text_encoder, tokenizer, unet, scheduler, controlnet=None):
        super().__init__()
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                              scheduler=scheduler, controlnet=controlnet)
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)


def pipeline_controls(pipe, controls, control_frames: Optional[np.ndarray], control_scale: float,
                      num_frames: int) -> list:
    """The run's ControlNets: `controls` (genl.controlnets.Control, several at once), plus the pipeline's own
    ControlNet on `control_frames` (F, H, W, 3) uint8 when given (the single-ControlNet form)."""
    from ..controlnets import Control, control_tensor

    out = list(controls or ())
    if control_frames is not None:
        if getattr(pipe, "controlnet", None) is None:
            raise ValueError("Control frames were given but no ControlNet is loaded: choose a ControlNet model.")
        images = control_tensor(control_frames, num_frames, pipe.unet.device, pipe.controlnet.dtype)
        out.append(Control(pipe.controlnet, images, control_scale, name="edges"))
    for c in out:
        if len(c.images) != num_frames:
            raise ValueError(f"The {c.name or 'control'} video has {len(c.images)} frames but the video has "
                             f"{num_frames}.")
    return out


@dataclass
class LongVideoOutput:
    frames: np.ndarray  # (F, H, W, 3) uint8
    latents: torch.Tensor  # (1, C, F, h, w) final clean latents
    notices: list = field(default_factory=list)  # what the run changed from the settings, in plain words


class TextConditions:
    """Text embeddings for the conditional and unconditional CFG halves, looked up by window.

    per_frame: every frame has its own mix (image models), so a window's states are its frames' rows.
    Otherwise each clip has one mix of the timeline's prompts (paper Sec. 3.2); it is computed for a window
    the first time that window is asked for and kept, so schedules whose windows move every step pay
    once per distinct window. `prefetch` mixes a list of windows in one batch.
    """

    def __init__(self, timeline: Timeline, num_frames: int, pos: torch.Tensor, neg: Optional[torch.Tensor], *,
                 dtype, per_frame: bool, interpolation: str = "linear", transition: int = 0):
        self.timeline, self.num_frames, self.dtype = timeline, num_frames, dtype
        self.pos, self.neg, self.per_frame, self.interpolation = pos, neg, per_frame, interpolation
        self.use_cfg = neg is not None
        self._clips: dict[Window, tuple] = {}
        if per_frame:
            mix = timeline.frame_prompt_mix(num_frames, transition)
            self.frames = self._mix(pos, mix), (self._mix(neg, mix) if self.use_cfg else None)

    def _mix(self, emb, mix):
        return mix_embeddings(emb, mix, self.interpolation).to(self.dtype)

    def prefetch(self, windows) -> None:
        missing = list(dict.fromkeys(w for w in windows if w not in self._clips))
        if self.per_frame or not missing:
            return
        mix = self.timeline.clip_prompt_mix(missing, self.num_frames)
        cond = self._mix(self.pos, mix)
        uncond = self._mix(self.neg, mix) if self.use_cfg else None
        for k, w in enumerate(missing):
            self._clips[w] = cond[k], (uncond[k] if uncond is not None else None)

    def clip_states(self, windows) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(k, tokens, dim) per CFG half: one state per clip (UNet3D models repeat it over frames)."""
        self.prefetch(windows)
        cond = torch.stack([self._clips[w][0] for w in windows])
        return cond, (torch.stack([self._clips[w][1] for w in windows]) if self.use_cfg else None)

    def frame_states(self, windows) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(sum of clip lengths, tokens, dim) per CFG half, frames contiguous per clip."""
        if self.per_frame:
            rows = torch.cat([window_frames(w, self.num_frames) for w in windows])
            cond, uncond = self.frames
            return cond[rows.to(cond.device)], (uncond[rows.to(cond.device)] if uncond is not None else None)
        lengths = torch.tensor([end - start for start, end in windows])
        cond, uncond = self.clip_states(windows)
        rep = lengths.to(cond.device)
        return cond.repeat_interleave(rep, dim=0), (uncond.repeat_interleave(rep, dim=0) if uncond is not None else None)


@torch.no_grad()
def encode_text(tokenizer, text_encoder, prompts: list[str], device) -> torch.Tensor:
    """CLIP-style text features (P, tokens, dim) for a list of prompts."""
    ids = tokenizer(
        prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
        return_tensors="pt",
    ).input_ids.to(device)
    return text_encoder(ids)[0]


def timeline_conditions(tokenizer, text_encoder, timeline: Timeline, plan: CoDenoisePlan, *, device, dtype,
                        use_cfg: bool, per_frame: bool = False, interpolation: str = "linear",
                        transition: int = 0) -> TextConditions:
    """Encode each distinct prompt once; mixes per frame (image models) or per clip (the paper) follow."""
    pairs = timeline.prompts()
    pos = encode_text(tokenizer, text_encoder, [p for p, _ in pairs], device)
    neg = encode_text(tokenizer, text_encoder, [n for _, n in pairs], device) if use_cfg else None
    text = TextConditions(timeline, plan.num_frames, pos, neg, dtype=dtype, per_frame=per_frame,
                          interpolation=interpolation, transition=transition)
    text.prefetch(plan.windows)  # the first step's clips in one batch
    return text


def make_plan(pipe, codenoise, num_frames: int, height: int, width: int, use_cfg: bool,
              attention: Optional[str] = None) -> CoDenoisePlan:
    """The run's co-denoising plan, with windows per call from free memory when the settings leave it open."""
    from ..settings import ATTENTION, CoDenoiseSettings

    codenoise = codenoise or CoDenoiseSettings()
    check_fusion(pipe.unet, codenoise.fusion)
    per_call = codenoise.windows_per_call or default_windows_per_call(
        pipe.unet.device, codenoise.clip_length, height, width, use_cfg, pipe.unet.dtype)
    return CoDenoisePlan.from_settings(codenoise, num_frames, attention=attention or ATTENTION,
                                       windows_per_call=per_call)


def guided(out: torch.Tensor, guidance: float) -> torch.Tensor:
    """Classifier-free guidance on a batch stacked as [unconditional; conditional]."""
    uncond, cond = out.chunk(2)
    return uncond + guidance * (cond - uncond)


def initial_noise(shape, seed: int, device, dtype, init_sigma: float = 1.0) -> torch.Tensor:
    """Gaussian noise drawn on the CPU from `seed`, so a seed means the same video on any device."""
    gen = torch.Generator("cpu").manual_seed(int(seed))
    return (torch.randn(shape, generator=gen, dtype=torch.float32) * init_sigma).to(device=device, dtype=dtype)


def shared_noise(shape, seed: int, device, init_sigma: float, motion=(0.0, 0.0), share: float = 1.0):
    """(1, C, F, h, w) float32 noise: one frame of noise for all frames, rolled by `motion` latent pixels per
    frame, mixed with independent noise when share < 1 (sqrt(share) x shared + sqrt(1 - share) x own: the
    variance stays 1, so every frame is still a draw of the sampler's prior)."""
    _, c, f, h, w = shape
    base = initial_noise((1, c, 1, h, w), seed, "cpu", torch.float32)
    frames = []
    for k in range(f):
        dy, dx = int(round(k * motion[1])), int(round(k * motion[0]))
        frames.append(torch.roll(base, shifts=(dy, dx), dims=(3, 4)))
    noise = torch.cat(frames, dim=2)
    if share < 1.0:
        own = initial_noise(shape, seed + 1, "cpu", torch.float32)
        noise = share ** 0.5 * noise + (1 - share) ** 0.5 * own
    return (noise * init_sigma).to(device)


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
        report(callback, "decode", min(i + chunk, frames.shape[0]), frames.shape[0])
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


GIB_PER_FRAME_512 = 0.09  # activation GiB per frame through an SD-1.5-sized UNet at 512x512, fp16, with headroom


def frames_per_call(device, height: int, width: int, dtype=torch.float16, fraction: float = 0.5) -> Optional[int]:
    """How many frames (CFG halves counted) one UNet call may hold in `fraction` of the free GPU memory;
    None on CPUs (no budget: host memory is not measured).

    Activation memory of SD-1.5-sized UNets grows about linearly with frames x pixels: about 0.065 GiB per
    frame at 512x512 in fp16 with SDPA on an H100 (bench/results; we budget 0.09 for headroom).
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    per_frame = GIB_PER_FRAME_512 * (height * width) / (512 * 512) * (2 if dtype == torch.float32 else 1) * 2**30
    return int(free * fraction / per_frame)


def default_windows_per_call(device, clip_length: int, height: int, width: int, use_cfg: bool,
                             dtype=torch.float16, fraction: float = 0.5, max_windows: int = 9) -> int:
    """How many clips to stack per model call: as many as half the free GPU memory allows.

    Throughput stops growing past ~8 clips per call on an H100; the cap is 9 so one call holds every clip
    of a shifted 128-frame step at S=M (8 or 9 clips). CPUs get a small fixed budget.
    """
    frames_per_window = clip_length * (2 if use_cfg else 1)
    budget_frames = frames_per_call(device, height, width, dtype, fraction)
    if budget_frames is None:
        return max(1, 32 // frames_per_window)
    return max(1, min(max_windows, budget_frames // frames_per_window))


def step_index(timesteps):
    """t -> its step number in `timesteps`, so a denoise called with t knows how far the schedule is."""
    index = {float(t): i for i, t in enumerate(timesteps)}

    def step(t) -> int:
        return index[float(t)]

    return step


def image_unet_denoiser(unet, text: TextConditions, num_frames: int, guidance_scale: float, controls=(),
                        timesteps=None):
    """The sampler's denoise for an image UNet: clips (k, C, M, h, w) become k*M images, frames contiguous
    per clip (the layout the cross-frame attention processor expects), CFG halves stacked [uncond; cond].

    controls: genl.controlnets.Control list (pipeline_controls); each row gets its own video frame's map, so
    window W_i is steered by its frames F_i's maps only, and their residuals are summed. timesteps: the
    sampling schedule, which turns t into the step index each control's start/end is measured against."""
    use_cfg = text.use_cfg
    controls = list(controls or ())
    if controls and timesteps is None:
        raise ValueError("Control needs the sampling timesteps (for its start/end).")
    step_of = step_index(timesteps) if controls else None
    cross = cross_frame_processors(unet)  # installed before the denoiser is built

    def denoise(x, t, windows):
        k, c, m, h, w = x.shape
        lengths = [end - start for start, end in windows]
        images = x.permute(0, 2, 1, 3, 4).reshape(k * m, c, h, w).to(unet.dtype)
        cond, uncond = text.frame_states(windows)
        if use_cfg:
            images, states = torch.cat([images, images]), torch.cat([uncond, cond])
        else:
            states = cond
        extra = {}
        if controls:
            rows = torch.cat([window_frames(win, num_frames) for win in windows])
            rows = torch.cat([rows, rows]) if use_cfg else rows
            extra = unet_control_kwargs(control_residuals(controls, images, t, step_of(t), len(timesteps), states,
                                                          rows))
        # clips of other lengths than M (the "partitioned" schedule's, joined on the frame axis when they differ)
        with frame_layout(cross, lengths, 2 if use_cfg else 1, images.device):
            out = unet(images, t, encoder_hidden_states=states, **extra).sample
        if use_cfg:
            out = guided(out, guidance_scale)
        return out.reshape(k, m, c, h, w).permute(0, 2, 1, 3, 4)

    denoise.joins_frames = True  # clips of any lengths may come joined on the frame axis (partition_windows)
    return denoise
