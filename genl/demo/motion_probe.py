"""Does the video model use the caption's direction word? A cheap measurement for issue 12's motion stage.

For held-out 16-frame windows of objects moving left/right/up/down, the noise-prediction error with the true
caption is compared with the error under the caption whose direction is reversed ("moving left" <->
"moving right", "up" <-> "down"), on the same noised latents at high noise levels, where a video's layout and
motion are decided. A model whose motion ignores the text scores 0.5 (chance) and a gap of 0; one that follows
the direction prefers the true caption. It needs no sampling and no parser, so it runs at the end of every
training run and on a CPU in seconds; the parser-based `bench/quality_motion.py` is the end-to-end check.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from genl.demo.world import caption, random_long_video, render_long_video

REVERSED = {"left": "right", "right": "left", "up": "down", "down": "up"}
PROBE_TIMESTEPS = (500, 700, 900)
PROBE_SEED = 70_000_000  # far from the motion stage's training videos and the benchmark's


def probe_windows(n: int, size: int) -> tuple[np.ndarray, list[str], list[str]]:
    """n rendered 16-frame clips (n, 16, size, size, 3) of directional motion, their captions and the
    captions with the direction reversed."""
    frames, true, flipped = [], [], []
    seed = PROBE_SEED
    while len(frames) < n:
        spec = random_long_video(seed, num_frames=16, num_segments=1)
        seed += 1
        seg = spec.segments[0]
        if seg.motion not in REVERSED:
            continue
        frames.append(render_long_video(spec, size))
        true.append(caption(seg))
        flipped.append(caption(replace(seg, motion=REVERSED[seg.motion])))
    return np.stack(frames), true, flipped


@torch.no_grad()
def direction_probe(unet, vae, text_encoder, tokenizer, scheduler, clips: tuple, device, autocast,
                    batch: int = 8) -> dict:
    """share_preferred: share of (clip, t) pairs whose true caption predicts the noise better than the
    reversed one (0.5 = the direction word is ignored); gap: mean relative error increase under the reversed
    caption. `clips` is what `probe_windows` returns."""
    frames, true, flipped = clips
    alphas = scheduler.alphas_cumprod.to(device)
    gen = torch.Generator().manual_seed(0)
    wins, gaps = [], []
    for i in range(0, len(frames), batch):
        x = torch.from_numpy(frames[i:i + batch]).to(device).flatten(0, 1).permute(0, 3, 1, 2).float() / 127.5 - 1
        with autocast:
            z = vae.encode(x).latent_dist.mean.float() * vae.config.scaling_factor
        b = len(x) // 16
        z = z.unflatten(0, (b, 16)).permute(0, 2, 1, 3, 4)  # (b, C, F, h, w)
        errors = []
        for texts in (true[i:i + batch], flipped[i:i + batch]):
            ids = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length,
                            truncation=True, return_tensors="pt").input_ids.to(device)
            with autocast:
                states = text_encoder(ids)[0].float().repeat_interleave(16, dim=0)
            per_t = []
            for t in PROBE_TIMESTEPS:
                noise = torch.randn(z.shape, generator=gen.manual_seed(t + i)).to(device)
                a = alphas[t]
                zt = a.sqrt() * z + (1 - a).sqrt() * noise
                with autocast:
                    pred = unet(zt, torch.full((b,), t, device=device), encoder_hidden_states=states).sample
                per_t.append((pred.float() - noise).pow(2).mean(dim=(1, 2, 3, 4)))
            errors.append(torch.stack(per_t, 1))  # (b, len(PROBE_TIMESTEPS))
        wins.append((errors[0] < errors[1]).float().flatten())
        gaps.append(((errors[1] - errors[0]) / errors[0]).flatten())
    return {"share_preferred": float(torch.cat(wins).mean()), "gap": float(torch.cat(gaps).mean()),
            "clips": len(frames), "timesteps": list(PROBE_TIMESTEPS)}
