"""Train the demo model in three wall-clock-limited stages on data rendered by `genl.demo.world`.

1. VAE (L1 + MSE + a small KL) on single frames; scaling_factor = 1 / std of its latents.
2. Text encoder + UNet2DConditionModel from scratch on single frames with their clip's caption
   (epsilon prediction, SD's scaled-linear betas, 10 % empty captions for classifier-free guidance).
3. AnimateDiff motion modules on 16-frame windows of rendered long videos, with the 2D weights and the text
   encoder when asked (`genl.demo.train_motion`; `stage="motion"` retrains it alone on a finished bundle).
The result is one AnimateDiff-format folder plus `unet_2d/` (and `text_encoder_2d/` when stage 3 trained the
text encoder), from which genl/models.py builds the image pipelines.
"""
from __future__ import annotations

import copy
import json
import math
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from genl.demo.world import caption, random_clip, render_clip

from .components import (ModelConfig, build_motion_adapter, build_scheduler, build_text_encoder, build_tokenizer,
                         build_unet, build_vae)
from .train_motion import motion_data_for, probe, save_bundle, train_motion_modules, train_motion_stage_only


@dataclass
class TrainConfig:
    out: str = "assets/demo-model"
    stage: str = "all"              # "all": every stage from scratch; "motion": stage 3 alone on `init`
    init: str = ""                  # bundle whose VAE, text encoder and 2D UNet the motion stage starts from
    minutes_vae: float = 1.5
    minutes_unet: float = 4.0
    minutes_motion: float = 3.0
    max_minutes: float = 0.0        # >0: hard limit on the whole run; the motion stage is cut to fit
    clips: int = 4000               # pre-rendered 16-frame clips (frames for stages 1-2 come from them too)
    batch_vae: int = 64
    batch_unet: int = 256
    batch_motion: int = 32          # windows of 16 frames
    motion_videos: int = 3000       # rendered videos the motion windows are cut from
    motion_mix: tuple = (1.0, 1.0, 2.0)  # shares of 16-frame clips, 17..64-frame segments, 64..128-frame videos
    motion_warm_start: bool = True  # start from init's motion modules when their config is unchanged
    lr_vae: float = 5e-4
    lr_unet: float = 5e-4
    lr_motion: float = 5e-4
    warmup: int = 200
    warmup_motion: int = 100
    ema: float = 0.999
    ema_motion: float = 0.999
    motion_train: str = "all"       # stage 3 trains "modules" (the motion modules alone) or "all" UNet weights
    lr_2d_scale: float = 0.2        # learning rate of the 2D weights stage 3 trains, relative to lr_motion
    lr_text_scale: float = 0.0      # >0: stage 3 trains the video model's own text encoder at lr_motion x this
    text_words: str = ""            # with lr_text_scale: train only these words' token embeddings ("" = all)
    temporal_loss: float = 1.0      # weight of the frame-to-frame error term (train_motion.motion_loss)
    direction_contrast: float = 0.0  # >0: weight of train_motion.direction_contrast (true vs reversed direction)
    contrast_margin: float = 0.1    # how much worse (relative) the reversed caption must predict the noise
    noise_share: float = 0.0        # stage 3: share of each window's noise common to its frames (mixed prior)
    probe_clips: int = 32           # held-out clips of the direction probe before/after stage 3 (0: none)
    caption_dropout: float = 0.1
    log_every: int = 50
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)


def _render(args):
    seed, size = args
    spec = random_clip(seed)
    return render_clip(spec, 16, size), caption(spec)


def render_parallel(render, n: int, size: int, seed: int) -> list:
    """render((clip_seed, size)) for n clips on every CPU core (at most 16); clip seeds follow from `seed`."""
    jobs = [(seed * 1_000_003 + i, size) for i in range(n)]
    with mp.get_context("fork").Pool(min(16, mp.cpu_count())) as pool:
        return pool.map(render, jobs, chunksize=16)


def render_dataset(n: int, size: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """n clips (n, 16, size, size, 3) uint8 and their captions, rendered on every CPU core."""
    out = render_parallel(_render, n, size, seed)
    return np.stack([f for f, _ in out]), [c for _, c in out]


def start_run(cfg) -> tuple[torch.device, dict]:
    """The device (a GPU when there is one), TF32 matmuls, the seed, and a log that records the settings."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(cfg.seed)
    log = {"settings": asdict(cfg), "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
           "torch": torch.__version__}
    return device, log


def add_config_args(parser, defaults, names) -> None:
    """--name options for the named fields of a config dataclass, typed and defaulted from `defaults`."""
    for name in names:
        value = getattr(defaults, name)
        parser.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)


class Stage:
    """Wall-clock budget, warmup + cosine learning rate over the budget's fraction, and a loss log."""

    def __init__(self, name, params, lr, minutes, warmup, log_every):
        """`params`: tensors, or param groups whose optional "lr_scale" multiplies the stage's learning rate."""
        self.name, self.lr, self.budget, self.warmup, self.log_every = name, lr, minutes * 60, warmup, log_every
        self.opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, betas=(0.9, 0.99))
        self.start, self.step, self.acc, self.log = time.time(), 0, [], []

    def running(self) -> bool:
        return time.time() - self.start < self.budget

    def update(self, loss: torch.Tensor, **parts: torch.Tensor) -> None:
        """One optimiser step on `loss`; `parts` (named loss terms) are averaged into the log beside it."""
        frac = min(1.0, (time.time() - self.start) / max(self.budget, 1e-9))
        lr = self.lr * min(1.0, (self.step + 1) / self.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in self.opt.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]], 1.0)
        self.opt.step()
        self.step += 1
        self.acc.append(torch.stack([loss.detach(), *(v.detach() for v in parts.values())]))
        if self.step % self.log_every == 0:
            means = torch.stack(self.acc).mean(0).tolist()
            self.acc = []
            entry = {"step": self.step, "seconds": round(time.time() - self.start, 1), "loss": means[0]}
            entry |= dict(zip(parts, means[1:]))
            self.log.append(entry)
            extra = "".join(f" {k} {v:.4f}" for k, v in zip(parts, means[1:]))
            print(f"[{self.name}] step {self.step} {time.time() - self.start:.0f}s loss {means[0]:.4f}{extra} "
                  f"lr {lr:.2e}", flush=True)

    def summary(self) -> dict:
        final = self.log[-1]["loss"] if self.log else (torch.stack(self.acc)[:, 0].mean().item() if self.acc else None)
        return {"steps": self.step, "seconds": round(time.time() - self.start, 1), "final_loss": final,
                "loss": self.log}


def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        e, m = list(ema.parameters()), list(model.parameters())
        torch._foreach_lerp_(e, m, 1 - decay)


def _autocast(device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu",
                                                                                                      enabled=False)


def train(cfg: TrainConfig) -> dict:
    if cfg.stage == "motion":
        if not cfg.init:
            raise ValueError("Training the motion stage alone needs --init: the bundle to start from.")
        return train_motion_stage_only(cfg)
    if cfg.stage != "all":
        raise ValueError(f"Unknown stage '{cfg.stage}'. Choose 'all' or 'motion'.")
    from diffusers import UNetMotionModel

    t0 = time.time()
    device, log = start_run(cfg)
    log["stages"] = {}
    mc = cfg.model

    frames, captions = render_dataset(cfg.clips, mc.size, cfg.seed)
    log["render_seconds"] = round(time.time() - t0, 1)
    print(f"rendered {frames.shape} in {log['render_seconds']}s", flush=True)
    frames = torch.from_numpy(frames).to(device)  # uint8 (N, 16, H, W, 3)
    n_clips = frames.shape[0]

    def pixels(clip_idx, frame_idx):
        x = frames[clip_idx, frame_idx].permute(0, 3, 1, 2).float()
        return x / 127.5 - 1

    # ---- stage 1: VAE
    vae = build_vae(mc).to(device).train()
    st = Stage("vae", list(vae.parameters()), cfg.lr_vae, cfg.minutes_vae, cfg.warmup, cfg.log_every)
    while st.running():
        x = pixels(torch.randint(n_clips, (cfg.batch_vae,), device=device),
                   torch.randint(16, (cfg.batch_vae,), device=device))
        with _autocast(device):
            post = vae.encode(x).latent_dist
            rec = vae.decode(post.sample()).sample.float()
        kl = post.kl().mean() / post.mean[0].numel()
        loss = (rec - x).abs().mean() + F.mse_loss(rec, x) + 1e-4 * kl
        st.update(loss)
    log["stages"]["vae"] = st.summary()
    vae.eval().requires_grad_(False)

    # latents of every frame once: mean and std of the posterior, sampled afresh at each use
    means, stds = [], []
    with torch.no_grad(), _autocast(device):
        for i in range(0, n_clips, 16):
            x = frames[i:i + 16].flatten(0, 1).permute(0, 3, 1, 2).float() / 127.5 - 1
            post = vae.encode(x).latent_dist
            means.append(post.mean.float().unflatten(0, (-1, 16)))
            stds.append(post.std.float().unflatten(0, (-1, 16)))
    means, stds = torch.cat(means), torch.cat(stds)  # (N, 16, C, h, w)
    scaling = float(1.0 / (means + stds * torch.randn_like(means)).std())
    vae.register_to_config(scaling_factor=scaling)
    log["scaling_factor"] = scaling
    print(f"latents {tuple(means.shape)} scaling_factor {scaling:.4f}", flush=True)
    del frames

    def latents(clip_idx, frame_idx=None):
        m, s = (means[clip_idx], stds[clip_idx]) if frame_idx is None else (means[clip_idx, frame_idx],
                                                                            stds[clip_idx, frame_idx])
        return (m + s * torch.randn_like(m)) * scaling

    tok = build_tokenizer(mc.max_length)
    ids = torch.tensor(tok(captions, padding="max_length", max_length=mc.max_length, truncation=True).input_ids,
                       device=device)
    empty = torch.tensor(tok([""], padding="max_length", max_length=mc.max_length).input_ids, device=device)

    def caption_ids(clip_idx):
        c = ids[clip_idx]
        drop = torch.rand(len(c), device=device) < cfg.caption_dropout
        return torch.where(drop[:, None], empty, c)

    sched = build_scheduler()
    alphas = sched.alphas_cumprod.to(device)

    def noised(z):
        t = torch.randint(0, sched.config.num_train_timesteps, (z.shape[0],), device=device)
        noise = torch.randn_like(z)
        a = alphas[t].view(-1, *[1] * (z.dim() - 1))
        return a.sqrt() * z + (1 - a).sqrt() * noise, noise, t

    # ---- stage 2: text encoder + image UNet
    text_encoder = build_text_encoder(mc, len(tok)).to(device).train()
    unet = build_unet(mc).to(device).train()
    ema_te, ema_unet = copy.deepcopy(text_encoder).eval(), copy.deepcopy(unet).eval()
    st = Stage("unet", list(unet.parameters()) + list(text_encoder.parameters()), cfg.lr_unet, cfg.minutes_unet,
               cfg.warmup, cfg.log_every)
    while st.running():
        ci = torch.randint(n_clips, (cfg.batch_unet,), device=device)
        z = latents(ci, torch.randint(16, (cfg.batch_unet,), device=device))
        zt, noise, t = noised(z)
        with _autocast(device):
            pred = unet(zt, t, encoder_hidden_states=text_encoder(caption_ids(ci))[0]).sample
        st.update(F.mse_loss(pred.float(), noise))
        decay = min(cfg.ema, (1 + st.step) / (10 + st.step))
        _ema_update(ema_unet, unet, decay)
        _ema_update(ema_te, text_encoder, decay)
    log["stages"]["unet"] = st.summary()
    del unet, text_encoder
    ema_te.requires_grad_(False)

    # ---- stage 3: motion modules on windows of long videos
    data = motion_data_for(vae, tok, cfg, device, _autocast(device), log)
    motion = UNetMotionModel.from_unet2d(ema_unet, build_motion_adapter(mc)).to(device)
    minutes = cfg.minutes_motion
    if cfg.max_minutes > 0:
        minutes = max(0.05, min(minutes, cfg.max_minutes - (time.time() - t0) / 60 - 0.5))
    motion, video_text, log["stages"]["motion"] = train_motion_modules(motion, ema_te, tok, data, sched, cfg, Stage,
                                                                       minutes, device, _autocast(device))
    probe(motion, vae, video_text, tok, sched, cfg, device, _autocast(device), log, "after")
    save_bundle(cfg.out, vae, video_text, tok, motion, build_motion_adapter(mc), sched, ema_unet, ema_te)
    out = Path(cfg.out)
    log["total_seconds"] = round(time.time() - t0, 1)
    (out / "training_log.json").write_text(json.dumps(log, indent=1))
    print(f"saved {out} in {log['total_seconds']}s", flush=True)
    return log
