"""Why segments fail the direction check (issue 12): generate the motion benchmark's videos with the CPU default
sampler, then label each failed segment.

Labels: 'teleport' (the parsed object moves > 0.15 of the frame between two adjacent frames inside the segment:
two objects, or the windows disagree), 'no-move' (net travel < 0.1), else 'wrong-way/drift'. Also lists the
frames after which the object teleports, against the prompt changes, and how they fall modulo the clip length:
teleports at window seams cluster there.

    python bench/motion_failures.py --model assets/demo-model --videos 12 --out bench/results/motion_failures_cpu.md
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from genl.demo.world import long_video_timeline, parse_caption, random_long_video  # noqa: E402
from genl.demo.world_parse import parse_frame  # noqa: E402
from quality_motion import motion_followed, sample, use_config  # noqa: E402

TELEPORT = 0.15
DEFAULT = "dpm++:10:16:trailing:settled:motion"  # the demo's CPU default (ui/common.py DEMO_QUICK)


def generate(model: str, videos: int, config: str = DEFAULT) -> list[np.ndarray]:
    """The motion benchmark's first `videos` videos at 64 frames, under `config` (quality_motion.parse_config)."""
    from genl.models import ModelManager

    pipe = ModelManager(compile=False).get("animatediff", model, device="cpu")
    sampling = use_config(pipe, pipe.scheduler.config, config)
    return [sample(pipe, random_long_video(1000 + v, num_frames=64), sampling, seed=v) for v in range(videos)]


def label(parsed: list, motion: str) -> str:
    if motion_followed(parsed, motion):
        return "ok"
    xy = np.array([(p.x, p.y) if p.x is not None else (np.nan, np.nan) for p in parsed])
    steps = np.hypot(*np.diff(xy, axis=0).T)
    if len(steps) and np.nanmax(steps) > TELEPORT:
        return "teleport"
    k = max(2, len(parsed) // 8)
    net = np.nanmedian(xy[-k:], 0) - np.nanmedian(xy[:k], 0)
    return "no-move" if np.hypot(*net) < 0.1 else "wrong-way/drift"


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="assets/demo-model")
    ap.add_argument("--videos", type=int, default=12)
    ap.add_argument("--config", default=DEFAULT, help="sampler config as in bench/quality_motion.py")
    ap.add_argument("--out", default="bench/results/motion_failures_cpu.md")
    args = ap.parse_args(argv)
    counts: dict[str, dict[str, int]] = {}
    seams = np.zeros(16, int)
    lines = [f"# Why segments fail the direction check ({args.model}, {args.videos} videos x 64 frames, "
             f"{args.config}, CPU)", "", "```"]
    for v, frames in enumerate(generate(args.model, args.videos, args.config)):
        spec = random_long_video(1000 + v, num_frames=64)
        parsed = [parse_frame(f) for f in frames]
        xy = np.array([(p.x, p.y) if p.x is not None else (np.nan, np.nan) for p in parsed])
        jumps = np.nonzero(np.hypot(*np.diff(xy, axis=0).T) > TELEPORT)[0]
        np.add.at(seams, jumps % 16, 1)
        timeline = long_video_timeline(spec)
        lines.append(f"video {v}: teleports after frames {jumps.tolist()}; prompt changes at "
                     f"{[a for a, _, _ in timeline][1:]}")
        for a, b, text in timeline:
            motion = parse_caption(text)["motion"]
            why = label(parsed[a:b + 1], motion)
            counts.setdefault(motion, {})[why] = counts.get(motion, {}).get(why, 0) + 1
    lines += ["```", "", "| motion | " + " | ".join(("ok", "teleport", "no-move", "wrong-way/drift")) + " |",
              "|---|---|---|---|---|"]
    for motion, c in sorted(counts.items()):
        lines.append(f"| {motion} | " + " | ".join(str(c.get(k, 0)) for k in ("ok", "teleport", "no-move",
                                                                                "wrong-way/drift")) + " |")
    lines += ["", "Teleports by frame index modulo 16 (a jump after frame 15 is one between frames 15 and 16): "
              + ", ".join(f"{i}: {n}" for i, n in enumerate(seams))]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
