"""Seconds per training step and peak GPU memory of one-shot tuning on the real-size SD-1.5 UNet (issue 14).

Random weights built from SD-1.5's UNet config (no download); clips of 16 frames at 512x512 (64x64 latents),
77-token CLIP-L-sized text states + one identifier token; frozen weights in bf16, trained weights fp32,
bf16 autocast, gradient checkpointing, bi-directional cross-frame + temporal attention. Batch 1 and 5 clips,
LoRA (default) and full (Tune-A-Video's modules), AdamW and, when bitsandbytes imports, 8-bit AdamW.

    python bench/bench_tuning.py --out bench/results        # GPU
    python bench/bench_tuning.py --smoke                    # tiny UNet on CPU: checks the script runs
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from genl.codenoise import make_windows  # noqa: E402
from genl.tuning.identifiers import ClipIdentifiers  # noqa: E402
from genl.tuning.settings import TuneSettings  # noqa: E402
from genl.tuning.train import diffusion_loss, make_optimizer  # noqa: E402
from genl.tuning.weights import prepare_unet  # noqa: E402


def build_unet(smoke: bool):
    from diffusers import UNet2DConditionModel

    if smoke:
        return UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=8,
                                    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                    norm_num_groups=8, attention_head_dim=4)
    return UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)  # SD-1.5


def scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def run(method: str, batch: int, optimizer: str, args, device) -> dict:
    torch.manual_seed(0)
    smoke = args.smoke
    m, lat, text_dim = (4, 8, 32) if smoke else (16, 64, 768)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    unet = build_unet(smoke).to(device, dtype)
    num_frames = m * 2 + m // 2 * (batch - 1)  # enough clips (stride M/2) for one batch
    windows = make_windows(num_frames, m, m // 2)[:batch]
    params = prepare_unet(unet, method, 16, True, m)
    unet.enable_gradient_checkpointing()
    unet.train()
    ids = ClipIdentifiers(windows, num_frames, text_dim, 1).to(device)
    settings = TuneSettings(video="-", prompt="-", optimizer=optimizer, batch_size=batch)
    opt = make_optimizer(settings, params, list(ids.parameters()), device)
    latents = torch.randn(1, 4, num_frames, lat, lat, device=device)
    text = torch.randn(num_frames, 77, text_dim, device=device)
    amp = torch.bfloat16 if device.type == "cuda" else None
    sched = scheduler()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(args.warmup + args.steps):
        g = torch.Generator().manual_seed(step)
        t0 = time.perf_counter()
        loss = diffusion_loss(unet, sched, latents, list(range(batch)), windows, text, ids,
                              torch.zeros(batch, dtype=torch.bool), g, amp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    trainable = sum(p.numel() for p in params)
    del unet, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()
    times.sort()
    return {"method": method, "batch_clips": batch, "optimizer": optimizer, "frames": m, "latent": lat,
            "seconds_per_step": round(times[len(times) // 2], 4), "peak_gib": round(peak, 2) if peak else None,
            "trainable_params_m": round(trainable / 1e6, 2), "loss": round(float(loss), 4)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args()
    if args.smoke:
        args.steps, args.warmup = 1, 1
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = True
    optimizers = ["adamw"]
    try:
        import bitsandbytes  # noqa: F401

        if device.type == "cuda":
            optimizers.append("adamw8bit")
    except ImportError:
        print("bitsandbytes is not installed: 8-bit AdamW not measured", flush=True)
    rows = []
    for method in ("lora", "full"):
        for batch in (1, 5):
            for opt in optimizers:
                try:
                    row = run(method, batch, opt, args, device)
                except torch.cuda.OutOfMemoryError:
                    row = {"method": method, "batch_clips": batch, "optimizer": opt, "error": "out of memory"}
                    torch.cuda.empty_cache()
                print(row, flush=True)
                rows.append(row)
    env = {"device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
           "torch": torch.__version__, "python": platform.python_version(), "smoke": args.smoke,
           "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                    text=True).stdout.strip()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "bench_tuning_smoke.json" if args.smoke else "bench_tuning.json"
    (out / name).write_text(json.dumps({"env": env, "rows": rows}, indent=1))
    print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
