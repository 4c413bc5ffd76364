"""Train a pose ControlNet for the bundled demo model on the stick-figure world, and measure whether it poses.

`python -m genl.demo.pose_controlnet train --out assets/demo-pose-controlnet --minutes 3`
`python -m genl.demo.pose_controlnet evaluate --controlnet assets/demo-pose-controlnet`
`python -m genl.demo.pose_controlnet train --smoke --out /tmp/pose-cn` (CPU, under a minute: checks the script)

As the edge ControlNet (`genl.demo.controlnet`): `ControlNetModel.from_unet` of the demo image UNet, trained
alone on single frames of `genl.demo.figures` clips with their captions; the control images are the
OpenPose-format drawings (`genl.conditions.pose.draw_openpose`) of the frames' true keypoints. The same run
trains the tiny figure pose estimator (`genl.demo.pose_estimator`) on those frames and then evaluates:
keypoint error of generated figures against the driving pose, with and without the ControlNet, at window
seams and elsewhere, through the studio's co-denoising (tuning-free) pipeline.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from genl.conditions.pose import draw_openpose_video
from genl.demo.figures import figure_caption, random_figure, render_figure_clip

from .controlnet import ControlTrainConfig, train as train_controlnet
from .train import add_config_args, render_parallel

FRAMES_PER_CLIP = (0, 3, 6, 9, 12)
EVAL_SEED = 50_000  # evaluation clips: random_figure(EVAL_SEED + k), never used in training (seeds < clips)


def _render(args):
    seed, size = args
    spec = random_figure(seed)
    frames, poses = render_figure_clip(spec, 16, size)
    frames, poses = frames[list(FRAMES_PER_CLIP)], poses[list(FRAMES_PER_CLIP)]
    return frames, draw_openpose_video(poses[:, None], size, size), poses, figure_caption(spec)


def render_pose_dataset(n_clips: int, size: int, seed: int, with_keypoints: bool = False):
    """Frames (N, H, W, 3), their OpenPose maps (N, H, W, 3) uint8, captions (and keypoints (N, 18, 2))."""
    out = render_parallel(_render, n_clips, size, seed)
    k = len(FRAMES_PER_CLIP)
    data = (np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out]),
            [o[3] for o in out for _ in range(k)])
    return data + (np.concatenate([o[2] for o in out]),) if with_keypoints else data


def seam_frames(num_frames: int, clip_length: int, stride: int) -> np.ndarray:
    """Frames within one frame of a window edge W_i (where one window's influence ends): the seams."""
    from genl.codenoise import make_windows

    edges = set()
    for w in make_windows(num_frames, clip_length, stride):
        edges |= {w[0] - 1, w[0], w[1] - 1, w[1]}
    edges -= {-1, 0, num_frames - 1, num_frames}  # the video's own ends are no seams
    return np.array(sorted(e for e in edges if 0 <= e < num_frames), int)


def evaluate(controlnet: str, estimator_dir: str, videos: int = 6, num_frames: int = 32, steps: int = 20,
             clip_length: int = 16, stride: int = 8, scale: float = 1.0, device: str = "cpu",
             model: str = "demo") -> dict:
    """Keypoint error (mean distance in frame widths, and PCK@0.05) of generated figures read back by the tiny
    estimator, against the driving pose, with the pose ControlNet and without any control."""
    from genl.models import ModelManager
    from genl.timeline import load_timeline
    from genl.settings import CoDenoiseSettings

    from .pose_estimator import NOTE, estimate, load_estimator

    net = load_estimator(estimator_dir, device)
    manager = ModelManager()
    piped = {"controlnet": manager.get("tuning_free", model, device=device, controlnet=controlnet),
             "none": manager.get("tuning_free", model, device=device)}
    seams = seam_frames(num_frames, clip_length, stride)
    errors = {name: [] for name in piped}
    source_err = []
    t0 = time.time()
    for k in range(videos):
        spec = random_figure(EVAL_SEED + k)
        frames, poses = render_figure_clip(spec, num_frames, 128)
        source_err.append(np.linalg.norm(estimate(net, frames) - poses, axis=-1))
        maps = draw_openpose_video(poses[:, None], 128, 128)
        for name, pipe in piped.items():
            kw = {"control_frames": maps, "control_scale": scale} if name == "controlnet" else {}
            out = pipe(load_timeline(figure_caption(spec)), num_frames=num_frames, height=128, width=128,
                       num_inference_steps=steps, guidance_scale=7.5, codenoise=CoDenoiseSettings(clip_length=clip_length, stride=stride),
                       seed=k, **kw).frames
            errors[name].append(np.linalg.norm(estimate(net, np.asarray(out)) - poses, axis=-1))  # (F, 18)
    seam_mask = np.zeros(num_frames, bool)
    seam_mask[seams] = True

    def summary(err):
        err = np.stack(err)  # (videos, F, 18)
        return {"mean_error": float(err.mean()), "pck05": float((err < 0.05).mean()),
                "seam_mean_error": float(err[:, seam_mask].mean()) if seam_mask.any() else None,
                "other_mean_error": float(err[:, ~seam_mask].mean())}

    return {"estimator": NOTE, "videos": videos, "frames": num_frames, "steps": steps, "clip_length": clip_length,
            "stride": stride, "scale": scale, "seam_frames": seams.tolist(),
            "estimator_on_rendered_frames": summary(source_err),
            "with_controlnet": summary(errors["controlnet"]), "without_control": summary(errors["none"]),
            "seconds": round(time.time() - t0, 1), "device": device}


def train(cfg: ControlTrainConfig, estimator_seconds: float, eval_videos: int, eval_steps: int,
          eval_frames: int = 32) -> dict:
    """ControlNet (cfg's budget), then the figure pose estimator on freshly rendered frames, then the evaluation;
    everything (weights, training_log.json, estimator, evaluation.json) goes to cfg.out."""
    from .pose_estimator import save_estimator, train_estimator

    log = train_controlnet(cfg, render=render_pose_dataset)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    frames, _, _, keypoints = render_pose_dataset(max(8, cfg.clips // 2), 128, cfg.seed + 1, with_keypoints=True)
    net, info = train_estimator(frames, keypoints, estimator_seconds, device, batch=min(128, len(frames)))
    save_estimator(net, cfg.out, info)
    print(f"estimator: held-out error {info['held_out_mean_error']:.4f}, PCK@0.05 {info['held_out_pck05']:.3f}")
    log["estimator"] = info
    if eval_videos > 0:
        log["evaluation"] = evaluate(cfg.out, cfg.out, eval_videos, eval_frames, eval_steps, device=str(device))
        (Path(cfg.out) / "evaluation.json").write_text(json.dumps(log["evaluation"], indent=1))
        print(json.dumps(log["evaluation"], indent=1))
    (Path(cfg.out) / "training_log.json").write_text(json.dumps(log, indent=1))
    return log


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m genl.demo.pose_controlnet")
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the demo model's pose ControlNet, the figure estimator, and evaluate")
    add_config_args(t, ControlTrainConfig(out="assets/demo-pose-controlnet"),
                    ("out", "model", "minutes", "max_minutes", "clips", "batch", "lr", "warmup", "log_every", "seed"))
    t.add_argument("--estimator-seconds", type=float, default=45.0)
    t.add_argument("--eval-videos", type=int, default=8)
    t.add_argument("--eval-steps", type=int, default=20)
    t.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU: checks the whole script in < 1 min")
    e = sub.add_parser("evaluate", help="keypoint error with and without the pose ControlNet")
    e.add_argument("--controlnet", default="assets/demo-pose-controlnet")
    e.add_argument("--estimator", default="", help="folder with estimator.safetensors (default: the ControlNet's)")
    e.add_argument("--videos", type=int, default=6)
    e.add_argument("--steps", type=int, default=20)
    e.add_argument("--scale", type=float, default=1.0)
    e.add_argument("--device", default="cpu")
    e.add_argument("--json", default="")
    args = ap.parse_args(argv)
    if args.command == "train":
        kw = {k: v for k, v in vars(args).items()
              if k not in ("command", "smoke", "estimator_seconds", "eval_videos", "eval_steps")}
        cfg = ControlTrainConfig(**kw)
        seconds, videos, steps, frames = args.estimator_seconds, args.eval_videos, args.eval_steps, 32
        if args.smoke:  # one 24-frame video (windows 0-15, 8-23: one seam), one step
            cfg.clips, cfg.batch, cfg.minutes, cfg.max_minutes, cfg.log_every, cfg.warmup = 16, 4, 0.05, 1.0, 2, 2
            seconds, videos, steps, frames = 3.0, 1, 1, 24
        train(cfg, seconds, videos, steps, frames)
        return 0
    res = evaluate(args.controlnet, args.estimator or args.controlnet, args.videos, steps=args.steps,
                   scale=args.scale, device=args.device)
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
