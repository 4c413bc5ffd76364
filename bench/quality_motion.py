"""Motion inside clips on the synthetic world (issue 12): does the object keep its identity, move smoothly, and
move the way its segment's caption says, under one or more sampler settings?

Per video (the quality benchmark's long videos, `random_long_video(1000 + v)`), every frame is parsed by
`genl.demo.world_parse.parse_frame`, and we report, besides `bench/quality.py`'s alignment / identity-change /
position-jump metrics ("elsewhere" = ordinary adjacent frames, not at a window seam or a prompt change):
- direction: share of segments whose parsed track does what the caption says (moving left/right/up/down:
  >= 0.15 of the 0.3 travel along the axis and more than across it; staying still: the object stays within
  0.05; growing: area x1.4; bouncing: rises >= 0.1 above its start and comes back within 0.1);
- seconds per video on this device.

Each config is scheduler:steps:S[:spacing] (M = 16; ddim:50:4 is the web page's default job; a spacing of
"trailing" starts few-step samplers from the last training timestep, as Lin et al. 2024 recommend). A first row scores the
world's own renders (what a perfect generator gets).

    python bench/quality_motion.py --model assets/demo-model --videos 8 --num-frames 64 \
        --configs ddim:50:4,dpm++:15:8 --tag new --out bench/results
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

from genl.demo.world import HOP, TRAVEL, long_video_timeline, parse_caption, random_long_video, render_long_video  # noqa: E402,E501
from genl.demo.world_parse import parse_frame  # noqa: E402
from genl.settings import CoDenoiseSettings  # noqa: E402
from quality import video_metrics  # noqa: E402

SPACINGS = ("leading", "trailing", "linspace")
SCHEDULES = ("fixed", "shifted", "settled")  # genl/plan.py window schedules
MIN_TRAVEL = TRAVEL / 2
STILL_RADIUS = 0.05
GROW_AREA = 1.4
MIN_HOP = 0.4 * HOP


def motion_followed(parsed: list, motion: str) -> bool:
    """Whether the parsed frames of one segment show `motion` (see the module docstring for the rules)."""
    found = [p for p in parsed if p.x is not None]
    if len(found) < max(4, len(parsed) // 2):
        return False
    xs, ys = np.array([p.x for p in found]), np.array([p.y for p in found])
    k = max(2, len(found) // 8)
    dx, dy = np.median(xs[-k:]) - np.median(xs[:k]), np.median(ys[-k:]) - np.median(ys[:k])
    if motion in ("left", "right"):
        along = dx if motion == "right" else -dx
        return bool(along >= MIN_TRAVEL and along > abs(dy))
    if motion in ("up", "down"):
        along = dy if motion == "down" else -dy
        return bool(along >= MIN_TRAVEL and along > abs(dx))
    if motion == "still":
        cx, cy = np.median(xs), np.median(ys)
        return bool(np.percentile(np.hypot(xs - cx, ys - cy), 90) <= STILL_RADIUS)
    if motion == "grow":
        sizes = np.array([p.size for p in found])
        return bool(np.median(sizes[-k:]) >= GROW_AREA * np.median(sizes[:k]))
    if motion == "bounce":
        start = np.median(ys[:k])
        return bool(start - ys.min() >= MIN_HOP and abs(dy) <= 0.1)
    raise ValueError(f"Unknown motion '{motion}'.")


def motion_metrics(frames: np.ndarray, timeline, clip_length: int = 16) -> dict:
    """quality.video_metrics plus the share of segments whose caption's motion is followed."""
    out = video_metrics(frames, timeline, clip_length)
    parsed = [parse_frame(f) for f in frames]
    motions = [parse_caption(text)["motion"] for _, _, text in timeline]
    followed = [motion_followed(parsed[a:b + 1], m) for (a, b, _), m in zip(timeline, motions)]
    out["direction"] = float(np.mean(followed))
    out["segments"] = list(zip(motions, followed))
    return out


def by_motion(per_video: list[dict]) -> dict:
    """Share of segments followed per caption motion, pooled over videos: which motions fail."""
    pooled: dict[str, list[bool]] = {}
    for video in per_video:
        for motion, ok in video["segments"]:
            pooled.setdefault(motion, []).append(ok)
    return {m: {"followed": float(np.mean(v)), "segments": len(v)} for m, v in sorted(pooled.items())}


def parse_config(text: str) -> tuple[str, int, int, dict]:
    """scheduler:steps:S[:spacing][:schedule][:motion], e.g. ddim:50:4, dpm++:15:8:trailing (timestep spacing
    override), dpm++:15:16:trailing:shifted (genl/plan.py's window schedule; "fixed" by default) or
    dpm++:10:16:trailing:settled:motion (clips fused inside the motion modules; model outputs by default);
    share0.3 starts from noise of which 0.3 (in variance) is common to every frame."""
    parts = text.split(":")
    try:
        name, steps, stride = parts[0], int(parts[1]), int(parts[2])
    except (IndexError, ValueError) as err:
        raise ValueError(f"A config is scheduler:steps:S[:spacing][:schedule], e.g. ddim:50:4 (got '{text}').") from err
    extra = {}
    for part in parts[3:]:
        if part.startswith("share") and "noise_share" not in extra:
            try:
                extra["noise_share"] = float(part[5:])
                continue
            except ValueError:
                pass
        key = ("timestep_spacing" if part in SPACINGS else "schedule" if part in SCHEDULES
               else "fusion" if part == "motion" else None)
        if key is None or key in extra:
            raise ValueError(f"After scheduler:steps:S come a timestep spacing ({', '.join(SPACINGS)}), a window "
                             f"schedule ({', '.join(SCHEDULES)}) and/or 'motion', once each (got '{text}').")
        extra[key] = part
    return name, steps, stride, extra


def use_config(pipe, base_config, text: str, weights: str = "flat") -> dict:
    """Give `pipe` the scheduler of config `text` (parse_config) over `base_config`; the pipeline call's sampling
    arguments for it (M = 16)."""
    from genl.sampling import make_scheduler

    name, steps, stride, extra = parse_config(text)
    codenoise = CoDenoiseSettings(clip_length=16, stride=stride, weights=weights,
                                  schedule=extra.pop("schedule", "fixed"), fusion=extra.pop("fusion", "output"))
    noise_share = extra.pop("noise_share", 0.0)
    pipe.scheduler = make_scheduler(name, {**base_config, **extra})
    return dict(num_inference_steps=steps, codenoise=codenoise, noise_share=noise_share)


def sample(pipe, spec, sampling: dict, seed: int, size: int = 128, guidance: float = 7.5) -> np.ndarray:
    """Frames of one benchmark video (its own timeline and length) under `use_config`'s sampling arguments."""
    from genl.timeline import Timeline

    return pipe(Timeline.from_rows(long_video_timeline(spec)), num_frames=spec.num_frames, height=size, width=size,
                guidance_scale=guidance, seed=seed, **sampling).frames


def specs(args) -> list:
    return [random_long_video(seed=1000 + v, num_frames=args.num_frames) for v in range(args.videos)]


def mean_row(rows: list[dict]) -> dict:
    """Numeric metrics averaged over videos, with the per-motion breakdown pooled over their segments."""
    row = {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0] if k != "segments"}
    return row | {"by_motion": by_motion(rows)}


COLS = ["config", "direction", "id_change_elsewhere", "jump_elsewhere", "align_colour", "align_shape",
        "align_background", "align_all", "id_change_at_seams", "jump_at_seams", "jump_at_transitions",
        "seconds_per_video", "load"]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="demo")
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--num-frames", type=int, default=None, help="fixed length (default: the benchmark's 64..128)")
    ap.add_argument("--configs", default="ddim:50:4")
    ap.add_argument("--guidance", type=float, default=7.5)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--weights", default="flat")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tag", default="demo")
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args(argv)
    from genl.models import ModelManager

    videos = specs(args)
    rows = [{"config": "rendered ground truth"} | mean_row(
        [motion_metrics(render_long_video(s, args.size), long_video_timeline(s)) for s in videos])]
    rows[0].update(seconds_per_video=0.0, load=0.0)
    # eager: a compiled UNet would recompile for every video length
    pipe = ModelManager(compile=False).get("animatediff", args.model, device=args.device)
    base_config = pipe.scheduler.config
    for text in args.configs.split(","):
        sampling = use_config(pipe, base_config, text, args.weights)
        per_video, seconds, loads = [], [], []
        for v, spec in enumerate(videos):
            timeline = long_video_timeline(spec)
            t0 = time.perf_counter()
            out = sample(pipe, spec, sampling, seed=v, size=args.size, guidance=args.guidance)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - t0)
            loads.append(os.getloadavg()[0])
            per_video.append(motion_metrics(out, timeline))
        row = {"config": text} | mean_row(per_video) | {"seconds_per_video": float(np.mean(seconds)),
                                                             "load": float(np.mean(loads))}
        rows.append(row)
        print(json.dumps(row), flush=True)
        write(args, rows)  # after every row: a run cut short keeps what it measured


def write(args, rows: list[dict]) -> None:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
    except OSError:
        commit = ""
    info = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu",
            "torch": torch.__version__, "model": args.model, "videos": args.videos,
            "frames": args.num_frames or "64..128", "guidance": args.guidance, "size": args.size,
            "weights": args.weights, "commit": commit, "date": time.strftime("%Y-%m-%d")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"quality_motion_{args.tag}.json").write_text(json.dumps({"info": info, "rows": rows}, indent=2))
    lines = [f"# Motion inside clips on the synthetic world ({args.tag})", "",
             "Setup: " + ", ".join(f"{k}={v}" for k, v in info.items()), "",
             "| " + " | ".join(COLS) + " |", "|" + "---|" * len(COLS)]
    for r in rows:
        lines.append("| " + " | ".join(r[c] if isinstance(r[c], str) else f"{r[c]:.3f}" for c in COLS) + " |")
    motions = sorted({m for r in rows for m in r.get("by_motion", {})})
    lines += ["", "Direction followed per caption motion (segments pooled over videos; count in brackets):", "",
              "| config | " + " | ".join(motions) + " |", "|" + "---|" * (len(motions) + 1)]
    for r in rows:
        cells = [f"{r['by_motion'][m]['followed']:.2f} ({r['by_motion'][m]['segments']})"
                 if m in r.get("by_motion", {}) else "-" for m in motions]
        lines.append(f"| {r['config']} | " + " | ".join(cells) + " |")
    (out / f"quality_motion_{args.tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
