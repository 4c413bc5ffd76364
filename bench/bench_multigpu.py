"""One long job on 1, 2 and 4 GPUs: window-parallel co-denoising (genl/distributed.py), seconds and speed-up.

Canonical job (issue 15): 128 frames, 512x512, M=16, S=4 (29 windows), 50 DDIM steps, CFG 7.5, fp16, random
weights with the real SD-1.5 (bi-directional cross-frame attention) / AnimateDiff v1.5 architectures. Every
world size runs as its own `launch`ed group of processes (one per GPU) in the same run; the timed part is the
denoising loop after one warm-up step (models load once per worker in the studio), and launch's own start-up
is reported separately. Also checks that all ranks end with bitwise-identical latents and how far the
result is from the 1-GPU one.

    python bench/bench_multigpu.py --model animatediff --gpus 1 2 4
    python bench/bench_multigpu.py --model sd --gpus 1 2 4
    python bench/bench_multigpu.py --smoke          # CPU, gloo, tiny models: checks the script itself
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from genl.codenoise import make_windows, window_weights  # noqa: E402
from genl.distributed import assign_windows, co_denoise_for, launch  # noqa: E402
from genl.pipelines.common import TextConditions, guided, image_unet_denoiser  # noqa: E402
from genl.timeline import Timeline  # noqa: E402


def build(model: str, smoke: bool, device, dtype):
    """The UNet on its device: real-size random weights, or the tests' tiny ones for --smoke."""
    if smoke:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from diffusers import UNetMotionModel
        from tiny import tiny_motion_adapter, tiny_unet

        unet = tiny_unet()
        if model == "animatediff":
            unet = UNetMotionModel.from_unet2d(unet, tiny_motion_adapter())
        return unet.to(device, dtype).eval(), 32
    from bench_speed import real_unet

    return real_unet(model, device, dtype)[0], 768


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def run_rank(ctx, model: str, frames: int, size: int, steps: int, windows_per_call: int, guidance: float,
             smoke: bool) -> dict:
    """One rank of the job: the same inputs on every rank (CPU-seeded), its share of the windows each step."""
    from diffusers import DDIMScheduler

    from bench_speed import SD_SCHED
    from genl.attention import set_cross_frame_attention

    device = ctx.device
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    clip, stride = (16, 4) if not smoke else (4, 2)
    unet, text_dim = build(model, smoke, device, dtype)
    windows = make_windows(frames, clip, stride)
    weights = [window_weights("flat", clip)] * len(windows)
    gen = torch.Generator("cpu").manual_seed(0)
    tokens = 77 if not smoke else 6
    # one random prompt embedding (and negative) per window: the text cost of a multi-prompt job
    pos, neg = (torch.randn(len(windows), tokens, text_dim, generator=gen).to(device, dtype) for _ in range(2))
    timeline = Timeline.from_rows([(k * frames // len(windows), (k + 1) * frames // len(windows) - 1, f"p{k}")
                                   for k in range(len(windows))])
    text = TextConditions(timeline, frames, pos, neg, dtype=dtype, per_frame=model != "animatediff")
    if model == "animatediff":
        def window_denoise(x, t, wins):
            cond, uncond = text.frame_states(wins)
            x = x.to(dtype)
            out = unet(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([uncond, cond])).sample
            return guided(out, guidance)
    else:
        set_cross_frame_attention(unet, "bidirectional", clip)
        window_denoise = image_unet_denoiser(unet, text, frames, guidance)

    def denoise(x, t, idx):  # co_denoise's denoise_batch: window indices -> the windows themselves
        return window_denoise(x, t, [windows[i] for i in idx])
    fuse = co_denoise_for(ctx)
    latent = size // 8
    noise = torch.randn(1, 4, frames, latent, latent, generator=gen).to(device)

    def loop(latents, timesteps, scheduler):
        for t in timesteps:
            model_in = scheduler.scale_model_input(latents, t)
            out = fuse(model_in, t, windows, weights, denoise_batch=denoise, windows_per_call=windows_per_call)
            latents = scheduler.step(out, t, latents).prev_sample
        return latents

    scheduler = DDIMScheduler(**SD_SCHED)
    scheduler.set_timesteps(steps, device=device)
    loop(noise.clone(), scheduler.timesteps[:1], scheduler)  # warm-up at the same shapes
    scheduler.set_timesteps(steps, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    torch.distributed.barrier()
    t0 = time.perf_counter()
    latents = loop(noise, scheduler.timesteps, scheduler)
    sync(device)
    seconds = time.perf_counter() - t0
    latents = latents.float().cpu()
    mine = assign_windows(windows, ctx.world_size)[ctx.rank]
    return {"seconds": seconds, "windows": len(windows), "my_windows": len(mine),
            "sha": hashlib.sha256(latents.numpy().tobytes()).hexdigest()[:16],
            "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0,
            "latents": latents if ctx.rank == 0 else None}


def measure(args, world: int) -> tuple[dict, torch.Tensor]:
    t0 = time.perf_counter()
    ranks = launch(run_rank, world, args.model, args.frames, args.size, args.steps, args.windows_per_call,
                   args.guidance, args.smoke, device_type="cpu" if args.smoke else "cuda",
                   threads=1 if args.smoke else None)
    wall = time.perf_counter() - t0
    seconds = max(r["seconds"] for r in ranks)  # the job ends when its slowest rank does
    row = {"model": args.model, "gpus": world, "seconds": round(seconds, 2),
           "launch_and_load_s": round(wall - seconds, 1), "windows": ranks[0]["windows"],
           "max_windows_per_rank": max(r["my_windows"] for r in ranks),
           "ranks_identical": len({r["sha"] for r in ranks}) == 1,
           "peak_gib": round(max(r["peak_gib"] for r in ranks), 2)}
    print(json.dumps(row), flush=True)
    return row, ranks[0]["latents"]


def write_markdown(path: Path, runs: list[dict]) -> None:
    """One table for every model's latest run (each model's command may run on its own)."""
    info = runs[-1]["info"]
    rows = [r for run in runs for r in run["rows"]]
    lines = ["# Several GPUs on one job: window-parallel co-denoising", "",
             f"- **Hardware:** {info['hardware']}", f"- **Software:** {info['software']}",
             f"- **Commit:** {info['commit']}  **Date:** {info['date']}", f"- **Job:** {info['job']}",
             *[f"- **Command ({run['rows'][0]['model']}, {run['info']['date']}):** `{run['info']['command']}`"
               for run in runs if run["rows"]],
             "- seconds = the denoising loop on the slowest rank (after one warm-up step); launch+load = process "
             "start-up, model build and warm-up. Speed-up is against the 1-GPU row of the same model and run.",
             "- Targets (issue 15): >= 1.8x on 2 GPUs, >= 3.4x on 4 GPUs. With 29 windows the ideal is "
             "29/15 = 1.93x on 2 and 29/8 = 3.63x on 4 (the busiest rank's share).", "",
             "| model | GPUs | seconds | speed-up | efficiency | windows on busiest rank | ranks bitwise equal | "
             "max abs diff vs 1 GPU | peak mem (GiB) | launch+load (s) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['gpus']} | {r['seconds']} | {r.get('speedup', '')} | "
                     f"{r.get('efficiency', '')} | {r['max_windows_per_rank']} of {r['windows']} | "
                     f"{r['ranks_identical']} | {r.get('max_abs_diff_vs_1', '')} | {r['peak_gib']} | "
                     f"{r['launch_and_load_s']} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["sd", "animatediff"], default="animatediff")
    ap.add_argument("--gpus", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--frames", type=int, default=128)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--windows-per-call", type=int, default=8)
    ap.add_argument("--guidance", type=float, default=7.5)
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--smoke", action="store_true", help="CPU + gloo + tiny models, to check the script")
    args = ap.parse_args()
    if args.smoke:
        args.frames, args.size, args.steps, args.windows_per_call = 12, 64, 2, 2
        args.gpus = [g for g in args.gpus if g <= 2] or [1, 2]
    import subprocess

    import diffusers

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    gpu = (f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}" if torch.cuda.is_available()
           else f"CPU ({platform.processor() or platform.machine()})")
    info = {"hardware": gpu if not args.smoke else f"CPU smoke run, gloo ({platform.machine()})",
            "software": f"torch {torch.__version__}, diffusers {diffusers.__version__}, CUDA {torch.version.cuda}, "
                        f"Python {platform.python_version()}",
            "commit": commit or "unknown", "date": time.strftime("%Y-%m-%d %H:%M"),
            "job": f"{args.frames} frames, {args.size}x{args.size}, {args.steps} DDIM steps, CFG {args.guidance}, "
                   f"{args.windows_per_call} windows per call, {'fp32 tiny models' if args.smoke else 'fp16'}",
            "command": "python " + " ".join(sys.argv)}
    out = Path(args.out)
    name = f"multigpu_{args.model}{'_smoke' if args.smoke else ''}"
    # a run of only --gpus 4 (e.g. to stay under a time limit) keeps the earlier rows and their 1-GPU time
    earlier = json.loads((out / f"{name}.json").read_text())["rows"] if (out / f"{name}.json").is_file() else []
    earlier = [r for r in earlier if r["gpus"] not in args.gpus]
    one = [r for r in earlier if r["gpus"] == 1]
    rows, reference = [], ((one[0]["seconds"], None) if one and 1 not in args.gpus else None)
    for world in args.gpus:
        row, latents = measure(args, world)
        if world == 1:
            reference = (row["seconds"], latents)
        if reference is not None:
            row["speedup"] = round(reference[0] / row["seconds"], 2)
            row["efficiency"] = f"{100 * row['speedup'] / world:.0f} %"
            if reference[1] is not None:
                row["max_abs_diff_vs_1"] = f"{(latents - reference[1]).abs().max().item():.2e}"
        rows.append(row)
    rows = sorted(earlier + rows, key=lambda r: r["gpus"])
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({"info": info, "rows": rows}, indent=2))
    suffix = "_smoke" if args.smoke else ""
    runs = [json.loads((out / f"multigpu_{m}{suffix}.json").read_text()) for m in ("animatediff", "sd")
            if (out / f"multigpu_{m}{suffix}.json").is_file()]
    write_markdown(out / f"multigpu{suffix}.md", runs)
    print((out / f"multigpu{suffix}.md").read_text())


if __name__ == "__main__":
    main()
