"""Train an edge ControlNet for the bundled demo model, and measure whether it places objects.

`python -m genl.demo.controlnet train --out assets/demo-controlnet --minutes 4`
`python -m genl.demo.controlnet evaluate --controlnet assets/demo-controlnet --frames 20`

The ControlNet is `ControlNetModel.from_unet` of the demo's image UNet (its encoder copied, zero convs
out), with a conditioning embedding of four stages (three stride-2 convs: 128 px edges -> the 16x16
latent grid). UNet, VAE and text encoder stay frozen; only the ControlNet learns, on single frames of
`genl.demo.world` clips with their captions (10 % empty for classifier-free guidance), epsilon MSE, the
demo's DDPM schedule. Control images come from `genl.conditions.edges.edge_map` (Canny 100/200, white on black).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from genl.conditions.edges import edge_map
from genl.demo.world import ClipSpec, caption, random_clip, render_clip

from .train import add_config_args, render_parallel, start_run

FRAMES_PER_CLIP = (0, 5, 10, 15)  # frames of a clip differ little; a few per clip is enough variety
# the fixed source of tests/test_demo_controlnet.py: a square at the left, far from the frame's centre
LEFT_SQUARE = ClipSpec("red", "square", "still", "grass", x0=0.25, y0=0.5, size=0.3, seed=0)


@dataclass
class ControlTrainConfig:
    out: str = "assets/demo-controlnet"
    model: str = "demo"
    minutes: float = 4.0            # training wall-clock budget
    max_minutes: float = 5.0        # whole run (rendering, loading, saving included); training is cut to fit
    clips: int = 6000
    batch: int = 256
    lr: float = 2e-4                # higher than SD ControlNets' 1e-5: minutes, not days, of training
    warmup: int = 100
    caption_dropout: float = 0.1
    embedding_channels: tuple = (16, 32, 96, 256)
    log_every: int = 50
    seed: int = 0


def _render(args):
    seed, size = args
    spec = random_clip(seed)
    frames = render_clip(spec, 16, size)[list(FRAMES_PER_CLIP)]
    return frames, edge_map(frames)[..., 0], caption(spec)


def render_edge_dataset(n_clips: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Frames (N, H, W, 3), their edge masks (N, H, W) uint8 and one caption per frame."""
    out = render_parallel(_render, n_clips, size, seed)
    k = len(FRAMES_PER_CLIP)
    return (np.concatenate([f for f, _, _ in out]), np.concatenate([e for _, e, _ in out]),
            [c for _, _, c in out for _ in range(k)])


def build_controlnet(unet, embedding_channels=(16, 32, 96, 256)):
    from diffusers import ControlNetModel

    return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=tuple(embedding_channels))


def _demo_components(model: str, device: torch.device) -> dict:
    from genl.models import ModelManager

    pipe = ModelManager().get("tuning_free", model, device=str(device), precision="fp32")
    return {k: getattr(pipe, k) for k in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}


def train(cfg: ControlTrainConfig, render=render_edge_dataset) -> dict:
    """render(clips, size, seed) -> frames (N, H, W, 3), control maps ((N, H, W) masks or (N, H, W, 3) RGB maps,
    uint8) and one caption per frame; edge maps by default (`genl.demo.pose_controlnet` passes pose maps)."""
    t0 = time.time()
    device, log = start_run(cfg)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")

    comps = _demo_components(cfg.model, device)
    vae, text_encoder, tok, unet = (comps[k].requires_grad_(False) if hasattr(comps[k], "requires_grad_")
                                    else comps[k] for k in ("vae", "text_encoder", "tokenizer", "unet"))
    size = unet.config.sample_size * 2 ** (len(vae.config.block_out_channels) - 1)
    frames, edges, captions = render(cfg.clips, size, cfg.seed)
    log["render_seconds"] = round(time.time() - t0, 1)
    log["frames"] = len(frames)
    print(f"rendered {frames.shape} + edges in {log['render_seconds']}s", flush=True)

    # frozen parts once: VAE posteriors of every frame, text embeddings of every caption
    means, stds = [], []
    with torch.no_grad(), autocast:
        for i in range(0, len(frames), 512):
            x = torch.from_numpy(frames[i:i + 512]).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1
            post = vae.encode(x).latent_dist
            means.append(post.mean.float())
            stds.append(post.std.float())
    means, stds = torch.cat(means), torch.cat(stds)
    scaling = vae.config.scaling_factor
    del frames
    edges = torch.from_numpy(edges).to(device)  # (N, H, W) uint8 edge masks or (N, H, W, 3) uint8 maps
    unique = sorted(set(captions))
    index = {c: i for i, c in enumerate(unique)}
    with torch.no_grad():
        ids = tok(unique + [""], padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt").input_ids.to(device)
        emb = text_encoder(ids)[0].float()
    caption_idx = torch.tensor([index[c] for c in captions], device=device)
    empty = len(unique)

    controlnet = build_controlnet(unet, cfg.embedding_channels).to(device).train()
    unet.eval()
    alphas = comps["scheduler"].alphas_cumprod.to(device)
    n_train = comps["scheduler"].config.num_train_timesteps
    opt = torch.optim.AdamW(controlnet.parameters(), lr=cfg.lr, weight_decay=0.01)
    budget = 60 * max(0.05 / 60, min(cfg.minutes, cfg.max_minutes - (time.time() - t0) / 60 - 0.4))
    log["train_budget_seconds"] = round(budget, 1)
    start, step, acc, curve = time.time(), 0, [], []
    while time.time() - start < budget:
        i = torch.randint(len(means), (cfg.batch,), device=device)
        z = (means[i] + stds[i] * torch.randn_like(means[i])) * scaling
        t = torch.randint(0, n_train, (cfg.batch,), device=device)
        noise = torch.randn_like(z)
        a = alphas[t].view(-1, 1, 1, 1)
        zt = a.sqrt() * z + (1 - a).sqrt() * noise
        text = torch.where(torch.rand(cfg.batch, device=device) < cfg.caption_dropout, empty, caption_idx[i])
        cond = edges[i].float().div(255)
        cond = cond.unsqueeze(1).expand(-1, 3, -1, -1) if cond.dim() == 3 else cond.permute(0, 3, 1, 2)
        with autocast:
            down, mid = controlnet(zt, t, encoder_hidden_states=emb[text], controlnet_cond=cond,
                                   return_dict=False)
            pred = unet(zt, t, encoder_hidden_states=emb[text], down_block_additional_residuals=down,
                        mid_block_additional_residual=mid).sample
        loss = F.mse_loss(pred.float(), noise)
        frac = min(1.0, (time.time() - start) / budget)
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) * (0.1 + 0.45 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(controlnet.parameters(), 1.0)
        opt.step()
        step += 1
        acc.append(loss.detach())
        if step % cfg.log_every == 0:
            value = torch.stack(acc).mean().item()
            acc = []
            curve.append({"step": step, "seconds": round(time.time() - start, 1), "loss": value})
            print(f"[controlnet] step {step} {time.time() - start:.0f}s loss {value:.4f} lr {lr:.2e}", flush=True)
    final = curve[-1]["loss"] if curve else torch.stack(acc).mean().item()
    log["train"] = {"steps": step, "seconds": round(time.time() - start, 1), "final_loss": final, "loss": curve}

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    controlnet.eval().requires_grad_(False).half().cpu().save_pretrained(out, safe_serialization=True)
    log["total_seconds"] = round(time.time() - t0, 1)
    (out / "training_log.json").write_text(json.dumps(log, indent=1))
    print(f"saved {out}: {step} steps, final loss {final:.4f}, {log['total_seconds']}s total", flush=True)
    return log


def placement_rates(controlnet_path: str, n_frames: int = 20, steps: int = 20, seed: int = 10_000,
                    guidance: float = 7.5, scale: float = 1.0, model: str = "demo", device: str = "cpu",
                    tolerance: float = 0.1, fixed: ClipSpec | None = None) -> dict:
    """Share of generations whose object centroid (parsed by `genl.demo.world_parse`) lies within `tolerance`
    of the source frame's object, with the source's edge map as control and without any control.

    Source frames are frame 0 of clips `random_clip(seed + k)` (unseen in training: seeds there are < clips),
    prompts their captions, generator seed k for both runs; with `fixed`, that clip for every k."""
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline, StableDiffusionPipeline

    from PIL import Image

    from genl.demo.world_parse import parse_frame

    dev = torch.device(device)
    comps = _demo_components(model, dev)
    controlnet = ControlNetModel.from_pretrained(controlnet_path, torch_dtype=torch.float32).to(dev)
    common = dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    with_cn = StableDiffusionControlNetPipeline(**comps, controlnet=controlnet, **common)
    without = StableDiffusionPipeline(**comps, **common)
    for p in (with_cn, without):
        p.set_progress_bar_config(disable=True)
    size = comps["unet"].config.sample_size * with_cn.vae_scale_factor
    hits = {"controlnet": [], "none": []}
    for k in range(n_frames):
        spec = fixed or random_clip(seed + k)
        frame = render_clip(spec, 1, size)[0]
        src = parse_frame(frame)
        control = Image.fromarray(edge_map(frame[None])[0])  # PIL: the pipeline scales it to 0..1 as in training
        kw = dict(prompt=caption(spec), height=size, width=size, num_inference_steps=steps, guidance_scale=guidance,
                  output_type="np")
        outs = {"controlnet": with_cn(image=control, controlnet_conditioning_scale=scale,
                                      generator=torch.Generator().manual_seed(k), **kw).images[0],
                "none": without(generator=torch.Generator().manual_seed(k), **kw).images[0]}
        for name, img in outs.items():
            got = parse_frame(np.clip(np.rint(img * 255), 0, 255).astype(np.uint8))
            ok = got.x is not None and src.x is not None and math.hypot(got.x - src.x, got.y - src.y) < tolerance
            hits[name].append(bool(ok))
    return {"frames": n_frames, "steps": steps, "guidance": guidance, "scale": scale, "tolerance": tolerance,
            "placement_controlnet": float(np.mean(hits["controlnet"])), "placement_none": float(np.mean(hits["none"])),
            "hits": hits}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m genl.demo.controlnet")
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the demo model's edge ControlNet")
    add_config_args(t, ControlTrainConfig(), ("out", "model", "minutes", "max_minutes", "clips", "batch", "lr",
                                              "warmup", "log_every", "seed"))
    e = sub.add_parser("evaluate", help="object placement with and without the ControlNet")
    e.add_argument("--controlnet", default="assets/demo-controlnet")
    e.add_argument("--frames", type=int, default=20)
    e.add_argument("--steps", type=int, default=20)
    e.add_argument("--scale", type=float, default=1.0)
    e.add_argument("--device", default="cpu")
    e.add_argument("--left-square", action="store_true", help="the test's fixed source frame, seeds 0..frames-1")
    e.add_argument("--json", default="", help="also write the result here")
    args = ap.parse_args(argv)
    if args.command == "train":
        train(ControlTrainConfig(**{k: v for k, v in vars(args).items() if k != "command"}))
        return 0
    res = placement_rates(args.controlnet, args.frames, args.steps, scale=args.scale, device=args.device,
                          fixed=LEFT_SQUARE if args.left_square else None)
    print(json.dumps({k: v for k, v in res.items() if k != "hits"}))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
