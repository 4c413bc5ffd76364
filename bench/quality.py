"""Quality benchmark on the synthetic shapes world, with the bundled demo model (issue 3).

Many multi-prompt long videos are generated from their world timelines under several co-denoising settings;
every frame is read back by the world's parser, which is near-perfect on rendered frames, so the numbers
measure the generator, not the judge. Metrics (all from parsed frames):
- alignment: parsed colour / shape / background equal the segment's prompt (and all three at once);
- identity changes: share of adjacent frame pairs inside a segment whose parsed colour or shape differ,
  split into pairs that cross an isolated-window seam (frame k*M) and the others;
- position jump: mean |centroid change| between adjacent frames inside segments, at seams and elsewhere;
- transitions: position jump across segment changes;
- wall time per video.

    python bench/quality.py --videos 12 --out bench/results            # GPU, or CPU (slow)
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genl.models import ModelManager  # noqa: E402
from genl.settings import CoDenoiseSettings  # noqa: E402
from genl.timeline import Timeline  # noqa: E402
from genl.demo.world import long_video_timeline, parse_caption, random_long_video, render_long_video  # noqa: E402
from genl.demo.world_parse import parse_frame  # noqa: E402

CONFIGS = [  # name, M, S, weights
    ("isolated (S=M)", 16, 16, "flat"),
    ("co-denoise S=M/2 flat", 16, 8, "flat"),
    ("co-denoise S=M/4 flat", 16, 4, "flat"),
    ("co-denoise S=M/4 gaussian", 16, 4, "gaussian"),
    ("co-denoise S=M/4 pyramid", 16, 4, "pyramid"),
]


def video_metrics(frames: np.ndarray, timeline, clip_length: int) -> dict:
    parsed = [parse_frame(f) for f in frames]
    seg_of = np.zeros(len(frames), dtype=int)
    for k, (a, b, _) in enumerate(timeline):
        seg_of[a:b + 1] = k
    targets = [parse_caption(cap) for _, _, cap in timeline]
    hits = {"colour": [], "shape": [], "background": [], "all": []}
    for j, p in enumerate(parsed):
        t = targets[seg_of[j]]
        ok = {k: p.__dict__[k] == t[k] for k in ("colour", "shape", "background")}
        for k, v in ok.items():
            hits[k].append(v)
        hits["all"].append(all(ok.values()))
    seam_change, other_change, seam_jump, other_jump, transition_jump = [], [], [], [], []
    for j in range(1, len(frames)):
        a, b = parsed[j - 1], parsed[j]
        if a.x is None or b.x is None:
            continue
        jump = float(np.hypot(b.x - a.x, b.y - a.y))
        if seg_of[j] != seg_of[j - 1]:
            transition_jump.append(jump)
            continue
        changed = (a.colour, a.shape) != (b.colour, b.shape)
        if j % clip_length == 0:
            seam_change.append(changed)
            seam_jump.append(jump)
        else:
            other_change.append(changed)
            other_jump.append(jump)
    mean = lambda v: float(np.mean(v)) if len(v) else float("nan")  # noqa: E731
    return {"align_" + k: mean(v) for k, v in hits.items()} | {
        "id_change_at_seams": mean(seam_change), "id_change_elsewhere": mean(other_change),
        "jump_at_seams": mean(seam_jump), "jump_elsewhere": mean(other_jump),
        "jump_at_transitions": mean(transition_jump), "found_object": mean([p.x is not None for p in parsed]),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=12)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--guidance", type=float, default=4.0)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--pipeline", default="animatediff", choices=["animatediff", "tuning_free"])
    ap.add_argument("--model", default="demo")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args()
    mm = ModelManager()
    pipe = mm.get(args.pipeline, args.model, device=args.device)
    # reference row: the world's own rendering of the same timelines (what a perfect generator would score)
    truth = [video_metrics(render_long_video(random_long_video(seed=1000 + v), size=args.size),
                           long_video_timeline(random_long_video(seed=1000 + v)), 16) for v in range(args.videos)]
    rows = [{"config": "rendered ground truth", "M": 16, "S": 16, "weights": "-", "seconds_per_video": 0.0}
            | {k: float(np.nanmean([r[k] for r in truth])) for k in truth[0]}]
    for name, m, s, weights in CONFIGS:
        per_video, seconds = [], []
        for v in range(args.videos):
            spec = random_long_video(seed=1000 + v)
            timeline = long_video_timeline(spec)
            tl = Timeline.from_rows(timeline)
            t0 = time.perf_counter()
            out = pipe(tl, num_frames=spec.num_frames, height=args.size, width=args.size,
                       num_inference_steps=args.steps, guidance_scale=args.guidance,
                       codenoise=CoDenoiseSettings(clip_length=m, stride=s, weights=weights), seed=v)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - t0)
            per_video.append(video_metrics(out.frames, timeline, m))
        row = {"config": name, "M": m, "S": s, "weights": weights,
               "seconds_per_video": float(np.mean(seconds))}
        row |= {k: float(np.nanmean([r[k] for r in per_video])) for k in per_video[0]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    info = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu",
            "torch": torch.__version__, "pipeline": args.pipeline, "model": args.model, "videos": args.videos,
            "steps": args.steps, "guidance": args.guidance, "size": args.size, "date": time.strftime("%Y-%m-%d")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"quality_{args.pipeline}.json").write_text(json.dumps({"info": info, "rows": rows}, indent=2))
    cols = ["config", "align_all", "align_colour", "align_shape", "align_background", "id_change_at_seams",
            "id_change_elsewhere", "jump_at_seams", "jump_elsewhere", "jump_at_transitions", "seconds_per_video"]
    lines = [f"# Quality on the synthetic world ({args.pipeline}, {args.model})", "",
             "Setup: " + ", ".join(f"{k}={v}" for k, v in info.items()), "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(r[c] if isinstance(r[c], str) else f"{r[c]:.3f}" for c in cols) + " |")
    (out / f"quality_{args.pipeline}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
