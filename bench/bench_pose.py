"""Pose/depth control at real size, random weights: OpenPose body network, Depth Anything V2 Small, and the SD-1.5
UNet with one and two SD-1.5 ControlNets (genl.controlnets.control_residuals), over 128 frames at 512x512.
Seconds per stage and peak GPU memory to bench/results/pose_<device>.json.

    python bench/bench_pose.py --out bench/results             (GPU)
    python bench/bench_pose.py --smoke --out /tmp/bench-pose   (tiny sizes on the CPU: checks the script)
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from bench_speed import SD15_UNET  # noqa: E402
from genl.conditions.depth import DepthAnything  # noqa: E402
from genl.conditions.pose import OpenPose, _openpose_modules  # noqa: E402
from genl.controlnets import Control, control_residuals, unet_control_kwargs  # noqa: E402


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(device, fn):
    """(result, seconds, peak GPU GiB) of fn()."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    _sync(device)
    t = time.perf_counter()
    out = fn()
    _sync(device)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return out, round(time.perf_counter() - t, 3), None if peak is None else round(peak, 2)


def depth_model(smoke: bool):
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation

    if smoke:
        cfg = DepthAnythingConfig(
            backbone_config={"model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 4,
                             "num_attention_heads": 2, "intermediate_size": 64, "image_size": 28, "patch_size": 14,
                             "out_indices": [1, 2, 3, 4], "reshape_hidden_states": False},
            reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 16, 32], fusion_hidden_size=16, head_hidden_size=8)
    else:
        cfg = DepthAnythingConfig()  # V2 Small's architecture (ViT-S/14 DINOv2 backbone, DPT head)
    return DepthAnythingForDepthEstimation(cfg)


def unet_and_controlnets(smoke: bool):
    from diffusers import ControlNetModel, UNet2DConditionModel

    from tiny import tiny_unet

    torch.manual_seed(0)
    unet = tiny_unet() if smoke else UNet2DConditionModel(**SD15_UNET)
    emb = (8, 16) if smoke else (16, 32, 96, 256)  # SD-1.5 ControlNets' conditioning embedding: 512 px -> 64
    return unet, [ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=emb) for _ in range(2)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--frames", type=int, default=128)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=16, help="frames per network call (detectors and UNet)")
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    n, size = (4, 64) if args.smoke else (args.frames, args.size)
    frames = np.random.default_rng(0).integers(0, 255, (n, size, size, 3), dtype=np.uint8)
    res = {"device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
           "torch": torch.__version__, "dtype": str(dtype), "frames": n, "size": size, "smoke": args.smoke,
           "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                    text=True).stdout.strip(), "stages": {}}
    try:
        import diffusers
        import transformers

        res["diffusers"], res["transformers"] = diffusers.__version__, transformers.__version__
    except ImportError:
        pass

    # OpenPose body network (CMU's architecture, random weights), controlnet_aux's post-processing per frame
    _, model_mod, _ = _openpose_modules()
    torch.manual_seed(0)
    pose = OpenPose(model_mod.bodypose_model().to(device, dtype), batch_size=args.batch,
                    input_height=32 if args.smoke else 184)
    pose(frames[:2])  # warm-up
    maps, sec, peak = timed(device, lambda: pose(frames))
    res["stages"]["openpose"] = {"seconds": sec, "per_frame": round(sec / n, 4), "peak_gib": peak}
    assert maps.shape == frames.shape

    depth = DepthAnything(depth_model(args.smoke).to(device, dtype), input_size=28 if args.smoke else 518,
                          batch_size=args.batch)
    depth(frames[:2])
    dmaps, sec, peak = timed(device, lambda: depth(frames))
    res["stages"]["depth_anything_v2_small"] = {"seconds": sec, "per_frame": round(sec / n, 4), "peak_gib": peak}
    del pose, depth

    # one denoising step over every frame (CFG: 2 rows per frame), UNet alone and with 1 / 2 ControlNets
    unet, nets = unet_and_controlnets(args.smoke)
    unet, nets = unet.to(device, dtype).eval(), [c.to(device, dtype).eval() for c in nets]
    lat = size // 8 if not args.smoke else 16
    cond_size = lat * 8 if not args.smoke else 32
    images = [torch.rand(n, 3, cond_size, cond_size, device=device) for _ in range(2)]
    controls = [Control(nets[0], images[0], 1.0, name="pose"), Control(nets[1], images[1], 0.6, name="depth")]
    dim = unet.config.cross_attention_dim

    @torch.no_grad()
    def step(k):
        for i in range(0, n, args.batch):
            rows = torch.arange(i, min(n, i + args.batch), device=device).repeat(2)
            x = torch.randn(len(rows), 4, lat, lat, device=device, dtype=dtype)
            states = torch.randn(len(rows), 77, dim, device=device, dtype=dtype)
            t = torch.tensor(500, device=device)
            extra = unet_control_kwargs(control_residuals(controls[:k], x, t, 0, 1, states, rows))
            unet(x, t, encoder_hidden_states=states, **extra)

    for k in (0, 1, 2):
        step(k)
        _, sec, peak = timed(device, lambda: step(k))
        res["stages"][f"unet_step_{k}_controlnets"] = {"seconds": sec, "per_frame": round(sec / n, 4),
                                                       "peak_gib": peak}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "pose_smoke.json" if args.smoke else f"pose_{device.type}.json"
    (out / name).write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
