"""Pose/depth control at real size, random weights: OpenPose body, hand and face networks (with controlnet_aux's
post-processing), Depth Anything V2 Small, and the SD-1.5 UNet with one, two and three SD-1.5 ControlNets
(genl.controlnets.control_residuals), over 128 frames at 512x512. Seconds per stage and peak GPU memory, with
hardware, versions and commit, to bench/results/pose.json and pose.md (pose_smoke.* with --smoke).

    python3 bench/bench_pose.py --out bench/results             (GPU; about 2-4 minutes on an H100)
    python3 bench/bench_pose.py --smoke --out /tmp/bench-pose   (tiny sizes on the CPU: checks the script)

Random-weight body networks rarely find a person, so the hand and face stages are fed the boxes OpenPose would
cut for one figure per frame (two hands of a quarter of the frame, one face of a fifth): the networks and the
peak searches then do the work they do on real footage.
"""
from __future__ import annotations

import argparse
import json
import os
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
from genl.conditions.pose_parts import face_network, face_peaks, hand_network, hand_peaks  # noqa: E402
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
    return unet, [ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=emb) for _ in range(3)]


def versions() -> dict:
    """Package versions that shape the numbers (absent ones left out)."""
    from importlib import metadata

    out = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda}
    for name in ("diffusers", "transformers", "controlnet-aux", "scipy", "numpy", "opencv-python-headless",
                 "opencv-python"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_markdown(res: dict, path: Path) -> None:
    lines = [f"# Pose / depth control bench ({'smoke, tiny sizes' if res['smoke'] else 'real size, random weights'})",
             "", f"{res['device']}, {res['dtype']}, {res['frames']} frames at {res['size']}x{res['size']}, "
             f"commit {res['commit']}, batch {res['batch']}.",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in res["versions"].items()) + ".", "",
             "| stage | work | seconds | ms per frame | peak GPU GiB |", "|---|---|---|---|---|"]
    for name, st in res["stages"].items():
        peak = "" if st["peak_gib"] is None else st["peak_gib"]
        lines.append(f"| {name} | {st.get('work', '')} | {st['seconds']} | {st['per_frame'] * 1000:.1f} | {peak} |")
    path.write_text("\n".join(lines) + "\n")


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
           "cpu_count": os.cpu_count(), "dtype": str(dtype), "frames": n, "size": size, "batch": args.batch,
           "smoke": args.smoke, "versions": versions(),
           "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                    text=True).stdout.strip(), "stages": {}}

    def record(name, sec, peak, work):
        res["stages"][name] = {"seconds": sec, "per_frame": round(sec / n, 4), "peak_gib": peak, "work": work}
        print(name, res["stages"][name], flush=True)

    # OpenPose body network (CMU's architecture, random weights), controlnet_aux's post-processing per frame
    _, model_mod, _ = _openpose_modules()
    torch.manual_seed(0)
    pose = OpenPose(model_mod.bodypose_model().to(device, dtype), batch_size=args.batch,
                    input_height=32 if args.smoke else 184)
    pose(frames[:2])  # warm-up
    maps, sec, peak = timed(device, lambda: pose(frames))
    record("openpose_body", sec, peak, "body network + controlnet_aux's peaks and limbs, per frame")
    assert maps.shape == frames.shape

    # hands: two boxes per frame, every scale's network call batched over all boxes of all frames
    torch.manual_seed(0)
    hand = hand_network().to(device, dtype).eval()
    side = max(20, size // 4)
    hand_crops = [frames[i, :side, k * side:(k + 1) * side, ::-1] for i in range(n) for k in (0, 1)]
    hand_kw = dict(box=32, scales=(0.5, 1.0)) if args.smoke else {}
    hand_peaks(hand, hand_crops[:2], batch_size=args.batch, **hand_kw)
    peaks, sec, peak = timed(device, lambda: hand_peaks(hand, hand_crops, batch_size=args.batch, **hand_kw))
    assert len(peaks) == len(hand_crops) and all(p.shape == (21, 2) for p in peaks)
    record("openpose_hands", sec, peak, f"{len(hand_crops)} boxes of {side} px, scales "
           f"{hand_kw.get('scales', (0.5, 1.0, 1.5, 2.0))} x {hand_kw.get('box', 368)} px")
    del hand

    torch.manual_seed(0)
    face = face_network().to(device, dtype).eval()
    side = max(20, size // 5)
    face_crops = [frames[i, :side, :side, ::-1] for i in range(n)]
    face_size = 32 if args.smoke else 384
    face_peaks(face, face_crops[:2], size=face_size, batch_size=args.batch)
    _, sec, peak = timed(device, lambda: face_peaks(face, face_crops, size=face_size, batch_size=args.batch))
    record("openpose_face", sec, peak, f"{len(face_crops)} boxes of {side} px at {face_size} px")
    del face

    depth = DepthAnything(depth_model(args.smoke).to(device, dtype), input_size=28 if args.smoke else 518,
                          batch_size=args.batch)
    depth(frames[:2])
    dmaps, sec, peak = timed(device, lambda: depth(frames))
    record("depth_anything_v2_small", sec, peak, f"input {28 if args.smoke else 518} px, one scale for the video")
    del pose, depth

    # one denoising step over every frame (CFG: 2 rows per frame), UNet alone and with 1 / 2 / 3 ControlNets
    unet, nets = unet_and_controlnets(args.smoke)
    unet, nets = unet.to(device, dtype).eval(), [c.to(device, dtype).eval() for c in nets]
    lat = size // 8 if not args.smoke else 16
    cond_size = lat * 8 if not args.smoke else 32
    images = [torch.rand(n, 3, cond_size, cond_size, device=device) for _ in range(3)]
    controls = [Control(nets[0], images[0], 1.0, name="pose"), Control(nets[1], images[1], 0.6, name="depth"),
                Control(nets[2], images[2], 0.4, 0.0, 0.5, name="edges")]
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

    for k in (0, 1, 2, 3):
        step(k)
        _, sec, peak = timed(device, lambda: step(k))
        record(f"unet_step_{k}_controlnets", sec, peak, f"{2 * n} rows (CFG), latents {lat}x{lat}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "pose_smoke" if args.smoke else "pose"
    (out / f"{name}.json").write_text(json.dumps(res, indent=1))
    write_markdown(res, out / f"{name}.md")
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
