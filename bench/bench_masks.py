"""Object-prompted masks at real size: GroundingDINO-tiny (Swin-T + BERT-base) and SAM 2.1-hiera-tiny
architectures with random weights over a 128-frame 512x512 video: seconds per stage and peak memory.

    python bench/bench_masks.py --out bench/results            # GPU, fp16
    python bench/bench_masks.py --smoke --out bench/results    # tiny configs on the CPU: checks the script

Random weights find nothing, so thresholds are 0 and SAM 2's object score is biased to "present": every stage
then runs the code path and the amount of work a real video with a found object would.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genl.conditions.detector import GroundingDinoDetector  # noqa: E402
from genl.conditions.mask_settings import MaskSettings  # noqa: E402
from genl.conditions.masks import object_masks  # noqa: E402
from genl.conditions.sam2_tracker import Sam2VideoSegmenter  # noqa: E402
from genl.demo.detectors import DetectorConfig, build_models, build_tokenizer  # noqa: E402
from genl.demo.world import ClipSpec, render_clip  # noqa: E402


def real_size_models():
    """GroundingDINO-tiny and SAM 2.1-hiera-tiny: the transformers configs' defaults are these checkpoints."""
    from transformers import GroundingDinoConfig, GroundingDinoForObjectDetection, Sam2VideoConfig, Sam2VideoModel

    torch.manual_seed(0)
    return GroundingDinoForObjectDetection(GroundingDinoConfig()), build_tokenizer(), Sam2VideoModel(Sam2VideoConfig())


class Timed:
    """Wraps a detector or a segmenter method, adding its wall time (synchronised on GPUs) to `seconds`."""

    def __init__(self, fn, device):
        self.fn, self.device, self.seconds, self.calls = fn, device, 0.0, 0

    def __call__(self, *a, **k):
        t = time.perf_counter()
        out = self.fn(*a, **k)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - t
        self.calls += 1
        return out


def run_meta(device, dtype) -> dict:
    """Hardware and versions for a results file: the GPU's name (or the CPU), dtype, torch, transformers, commit."""
    import transformers

    try:
        commit = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True).strip()
    except Exception:
        commit = "unknown"
    return {"device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
            "dtype": str(dtype), "torch": torch.__version__, "transformers": transformers.__version__, "commit": commit}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--frames", type=int, default=128)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    if args.smoke:
        args.frames, args.size = 8, 64
        gdino, tok, sam2 = build_models(DetectorConfig(size=64, d_model=32, queries=10, swin_dim=8, text_dim=32,
                                                       sam_hidden=128, sam_dim=8))
        edges = {"shortest_edge": 64, "longest_edge": 64}
    else:
        gdino, tok, sam2 = real_size_models()
        edges = {}  # the checkpoint's 800 / 1333
    with torch.no_grad():
        sam2.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(10.0)
    gdino, sam2 = gdino.to(device, dtype).eval(), sam2.to(device, dtype).eval()
    frames = render_clip(ClipSpec("red", "circle", "right", "grass", 0.3, 0.5, 0.25, seed=1), args.frames, args.size)
    settings = MaskSettings(box_threshold=0.0, text_threshold=0.0, redetect_below=0.0, mask_threshold=0.0,
                            dilate=2, feather=1.5)
    results = {}
    for name, propagate in (("propagated", True), ("per_frame", False)):
        detector = GroundingDinoDetector(gdino, tok, **edges)
        segmenter = Sam2VideoSegmenter(sam2)
        timed_detect = Timed(detector, device)
        segmenter.step = Timed(segmenter.step, device)
        segmenter.start = Timed(segmenter.start, device)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        try:
            found = object_masks(frames, "the red circle", settings=MaskSettings(**{**settings.__dict__,
                                                                                   "propagate": propagate}),
                                 detector=timed_detect, tracker=segmenter)
        except ValueError as err:  # e.g. fp16 random weights giving NaN scores: keep the timings, say why
            found, error = None, str(err)
        else:
            error = ""
        total = time.perf_counter() - t
        results[name] = {
            "total_s": round(total, 3), "detect_s": round(timed_detect.seconds, 3), "detect_calls": timed_detect.calls,
            "preprocess_s": round(segmenter.start.seconds, 3),
            "track_s": round(segmenter.step.seconds, 3), "track_steps": segmenter.step.calls,
            "other_s": round(total - timed_detect.seconds - segmenter.start.seconds - segmenter.step.seconds, 3),
            "keyframes": len(found.keyframes) if found else 0,
            "mask_shape": list(found.masks.shape) if found else None, "error": error,
            "peak_gpu_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None,
        }
        print(name, results[name], flush=True)
    meta = {**run_meta(device, dtype), "frames": args.frames, "size": args.size, "chunk": settings.chunk,
            "keyframe_every": settings.keyframe_every, "smoke": args.smoke,
            "models": "tiny demo configs" if args.smoke else "GroundingDINO-tiny + SAM 2.1-hiera-tiny (random weights)"}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "masks_smoke" if args.smoke else "masks"
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    lines = [f"# Object masks, {meta['models']}", "",
             f"{args.frames} frames {args.size}x{args.size}, {meta['device']}, {meta['dtype']}, torch {meta['torch']}, "
             f"transformers {meta['transformers']}, commit {meta['commit']}; keyframe every {settings.keyframe_every}, "
             f"chunks of {settings.chunk}.", "",
             "| mode | total s | detect s (calls) | preprocess s | track s (steps) | other s | peak GPU GB |",
             "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['total_s']} | {r['detect_s']} ({r['detect_calls']}) | {r['preprocess_s']} | "
                     f"{r['track_s']} ({r['track_steps']}) | {r['other_s']} | {r['peak_gpu_gb']} |")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
