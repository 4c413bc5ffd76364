"""Speed and memory of the engine on real-size architectures (random weights), on a GPU.

Canonical job (issue 2): 128 frames, 512x512, M=16, S=4, 50 steps, CFG 7.5, fp16.
frame-evals/s = UNet frame evaluations (both CFG halves counted) / seconds of the denoising loop.
Also measures a bare UNet forward at the same batch, so the engine's own overhead is visible.

    python bench/bench_speed.py --model sd --out bench/results
    python bench/bench_speed.py --model animatediff --out bench/results
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genl.attention import reset_attention, set_cross_frame_attention  # noqa: E402
from genl.pipelines.common import TextConditions, guided, image_unet_denoiser  # noqa: E402
from genl.plan import CoDenoisePlan  # noqa: E402
from genl.timeline import Timeline  # noqa: E402
from genl.sampling import co_denoise_sample, make_scheduler  # noqa: E402

SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
SD15_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
                layers_per_block=2, down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512)
SD_SCHED = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                set_alpha_to_one=False, steps_offset=1)


def build(model: str, device, dtype):
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD15_UNET)
    if model == "animatediff":
        unet = UNetMotionModel.from_unet2d(unet, MotionAdapter())
    return unet.to(device, dtype).eval()


def sync():
    torch.cuda.synchronize()


@torch.no_grad()
def bare_rate(unet, model, frames_per_call, device, dtype, clip=16, reps=5):
    """UNet forward alone on one stacked batch: the ceiling the engine is compared with."""
    states = torch.randn(frames_per_call, 77, 768, device=device, dtype=dtype)
    if model == "animatediff":
        x = torch.randn(frames_per_call // clip, 4, clip, 64, 64, device=device, dtype=dtype)
    else:
        x = torch.randn(frames_per_call, 4, 64, 64, device=device, dtype=dtype)
    for _ in range(2):
        unet(x, 500, encoder_hidden_states=states)
    sync()
    t = time.perf_counter()
    for _ in range(reps):
        unet(x, 500, encoder_hidden_states=states)
    sync()
    return frames_per_call * reps / (time.perf_counter() - t)


@torch.no_grad()
def canonical(unet, model, device, dtype, windows_per_call, frames=128, clip=16, stride=4, steps=50,
              guidance=7.5, attention="bidirectional"):
    from diffusers import DDIMScheduler

    plan = CoDenoisePlan(num_frames=frames, clip_length=clip, stride=stride, windows_per_call=windows_per_call)
    windows = plan.windows
    gen = torch.Generator(device).manual_seed(0)
    text = TextConditions(Timeline.single("a", frames), frames,
                          torch.randn(1, 77, 768, device=device, dtype=dtype, generator=gen),
                          torch.randn(1, 77, 768, device=device, dtype=dtype, generator=gen), dtype=dtype,
                          per_frame=False)
    text.prefetch(windows)
    if model == "animatediff":
        def denoise(x, t, wins):
            cond, uncond = text.frame_states(wins)
            x = x.to(dtype)
            out = unet(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([uncond, cond])).sample
            return guided(out, guidance)
    else:
        if attention == "none":  # plain per-frame self-attention: the image UNet as it ships
            reset_attention(unet)
        else:
            set_cross_frame_attention(unet, attention, clip)
        denoise = image_unet_denoiser(unet, text, frames, guidance)
    sched = make_scheduler("ddim", DDIMScheduler(**SD_SCHED).config)
    sched.set_timesteps(steps, device=device)
    latents = torch.randn(1, 4, frames, 64, 64, device=device, generator=gen)
    # one warm-up step at the same shapes (a studio worker keeps its model loaded and warm between jobs)
    co_denoise_sample(sched, latents.clone(), sched.timesteps[:1], plan, denoise)
    sched.set_timesteps(steps, device=device)
    torch.cuda.reset_peak_memory_stats()
    sync()
    t = time.perf_counter()
    co_denoise_sample(sched, latents, sched.timesteps, plan, denoise)
    sync()
    seconds = time.perf_counter() - t
    evals = steps * len(windows) * clip * 2
    return {"seconds": round(seconds, 2), "frame_evals": evals, "frame_evals_per_s": round(evals / seconds, 1),
            "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2), "windows": len(windows),
            "windows_per_call": windows_per_call, "attention": attention if model == "sd" else "motion module"}


@torch.no_grad()
def vae_decode_rate(device, dtype, frames=16, chunk=8):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(**SD15_VAE).to(device, dtype).eval()
    z = torch.randn(chunk, 4, 64, 64, device=device, dtype=dtype)
    vae.decode(z)
    sync()
    t = time.perf_counter()
    for _ in range(frames // chunk):
        vae.decode(z)
    sync()
    return frames / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["sd", "animatediff"], default="sd")
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--windows-per-call", type=int, nargs="*", default=[4])
    ap.add_argument("--attention", nargs="*", default=["bidirectional"])
    ap.add_argument("--skip-canonical", action="store_true")
    args = ap.parse_args()
    device, dtype = torch.device("cuda"), torch.float16
    import diffusers

    info = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "diffusers": diffusers.__version__,
            "cuda": torch.version.cuda, "python": platform.python_version(), "model": args.model,
            "dtype": "fp16", "mode": "eager", "date": time.strftime("%Y-%m-%d %H:%M")}
    unet = build(args.model, device, dtype)
    results = {"info": info, "bare_unet": {}, "canonical": []}
    for wpc in args.windows_per_call:
        results["bare_unet"][wpc] = round(bare_rate(unet, args.model, wpc * 32, device, dtype), 1)
        print("bare", wpc, results["bare_unet"][wpc], flush=True)
    if not args.skip_canonical:
        for attention in (args.attention if args.model == "sd" else ["motion"]):
            for wpc in args.windows_per_call:
                bare = results["bare_unet"][wpc]
                if args.model == "sd":  # the same UNet forward with this attention processor installed
                    if attention == "none":
                        reset_attention(unet)
                    else:
                        set_cross_frame_attention(unet, attention, 16)
                    bare = round(bare_rate(unet, args.model, wpc * 32, device, dtype), 1)
                r = canonical(unet, args.model, device, dtype, wpc, steps=args.steps, attention=attention)
                r["bare_unet_frame_evals_per_s"] = bare
                r["engine_efficiency"] = round(r["frame_evals_per_s"] / bare, 3)
                results["canonical"].append(r)
                print(json.dumps(r), flush=True)
    results["vae_decode_frames_per_s"] = round(vae_decode_rate(device, dtype), 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"speed_{args.model}.json"
    path.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
