"""Every pipeline end to end on a GPU with the real-size SD-1.5 / AnimateDiff architectures (random
weights), in fp16 and bf16: text encoding, co-denoising, inversion, VAE encode/decode, callbacks, cancel.

    python bench/gpu_smoke.py --out bench/results
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_speed import SD15_UNET, SD15_VAE, SD_SCHED  # noqa: E402
from genl.pipelines import LongAnimateDiffPipeline, LongTuningFreePipeline, LongVideoEditPipeline  # noqa: E402
from genl.sampling import Cancelled  # noqa: E402
from genl.settings import CoDenoiseSettings  # noqa: E402
from genl.timeline import Timeline  # noqa: E402


def sd15_components(device, dtype):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from tiny import tiny_tokenizer
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    tok = tiny_tokenizer(max_length=77)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                        num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77))
    return dict(vae=AutoencoderKL(**SD15_VAE).to(device, dtype).eval(), text_encoder=text.to(device, dtype).eval(),
                tokenizer=tok, unet=UNet2DConditionModel(**SD15_UNET).to(device, dtype).eval(),
                scheduler=DDIMScheduler(**SD_SCHED))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    from diffusers import MotionAdapter, UNetMotionModel

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    tl = Timeline.parse(f"0-{args.frames // 2 - 1}: a red circle | {args.frames // 2}-{args.frames - 1}: a blue square")
    kw = dict(num_frames=args.frames, height=args.size, width=args.size, num_inference_steps=3,
              codenoise=CoDenoiseSettings(clip_length=16, stride=8))
    report = {"gpu": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__, "runs": []}
    for dtype in ((torch.float16, torch.bfloat16) if cuda else (torch.float32,)):
        comps = sd15_components(device, dtype)
        events = []
        cb = lambda e: events.append((e["stage"], e["step"], e["total"]))  # noqa: E731
        frames_src = np.random.default_rng(0).integers(0, 255, (args.frames, args.size, args.size, 3), np.uint8)
        runs = [
            ("tuning_free", lambda: LongTuningFreePipeline(**comps)(tl, callback=cb, **kw)),
            ("edit", lambda: LongVideoEditPipeline(**comps)(frames_src, Timeline.parse("a cat"), tl,
                                                         num_inference_steps=3,
                                                         codenoise=CoDenoiseSettings(clip_length=16, stride=8),
                                                         smoothness=0.1, callback=cb)),
            ("animatediff", lambda: LongAnimateDiffPipeline(**{**comps, "unet": UNetMotionModel.from_unet2d(
                comps["unet"], MotionAdapter()).to(device, dtype).eval()})(tl, callback=cb, **kw)),
        ]
        for name, fn in runs:
            events.clear()
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            out = fn()
            if cuda:
                torch.cuda.synchronize()
            row = {"pipeline": name, "dtype": str(dtype).split(".")[-1], "seconds": round(time.perf_counter() - t, 2),
                   "frames": list(out.frames.shape), "finite": bool(torch.isfinite(out.latents).all()),
                   "stages": sorted({e[0] for e in events}), "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None}
            report["runs"].append(row)
            print(json.dumps(row), flush=True)
        steps = []
        try:
            LongTuningFreePipeline(**comps)(tl, callback=lambda s, i, n, x: steps.append(i),
                                            is_cancelled=lambda: len(steps) >= 1, **{**kw, "num_inference_steps": 10})
            report["cancel"] = "not cancelled"
        except Cancelled:
            report["cancel"] = f"cancelled after {len(steps)} step(s) of 10"
        del comps
        torch.cuda.empty_cache()
    print(json.dumps({"cancel": report["cancel"]}))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_smoke.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
