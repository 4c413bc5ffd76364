"""VAE decode time of the canonical job's 128 frames (512x512, fp16, SD-1.5's VAE architecture, random
weights) in the memory formats and chunk sizes the studio could use (issue 11: the decode is about 2 s of the
job's 34-55 s). Results go to OUT/decode.json and OUT/decode.md with the hardware and versions.

    python bench/bench_decode.py --out bench/results            # GPU
    python bench/bench_decode.py --smoke --out /tmp/decode       # tiny VAE on the CPU: checks the script
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_speed import SD15_VAE, TINY_VAE  # noqa: E402
from genl.pipelines.common import decode_latents  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=128)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args(argv)
    from diffusers import AutoencoderKL

    device = torch.device("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    frames, latent = (8, 8) if args.smoke else (args.frames, args.size // 8)
    torch.manual_seed(0)
    vae = AutoencoderKL(**(TINY_VAE if args.smoke else SD15_VAE)).to(device, dtype).eval()
    z = torch.randn(1, 4, frames, latent, latent, device=device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    rows = {}
    for name, channels_last, benchmark, chunk in [("default, 8 frames per call", False, False, 8),
                                                  ("channels-last, 8", True, False, 8),
                                                  ("channels-last + cuDNN autotune, 8", True, True, 8),
                                                  ("channels-last + cuDNN autotune, 16", True, True, 16)]:
        vae.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        torch.backends.cudnn.benchmark = benchmark
        with torch.no_grad():
            decode_latents(vae, z[:, :, :chunk], chunk=chunk)  # warm-up (and autotune)
            times = []
            for _ in range(args.repeats):
                sync()
                t0 = time.perf_counter()
                decode_latents(vae, z, chunk=chunk)
                sync()
                times.append(time.perf_counter() - t0)
        rows[name] = {"seconds": min(times), "all": times, "channels_last": channels_last, "cudnn_benchmark": benchmark,
                      "chunk": chunk}
        print(name, rows[name], flush=True)
    info = {"gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "frames": frames, "size": args.size, "dtype": str(dtype),
            "date": time.strftime("%Y-%m-%d %H:%M"), "smoke": args.smoke}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "decode.json").write_text(json.dumps({"info": info, "results": rows}, indent=1))
    lines = ["# VAE decode of the canonical job's frames", "", "Setup: " + ", ".join(f"{k}={v}" for k, v in info.items()),
             "", "| configuration | seconds (best of repeats) |", "|---|---|"]
    lines += [f"| {n} | {r['seconds']:.3f} |" for n, r in rows.items()]
    (out / "decode.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
