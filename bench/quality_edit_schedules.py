"""Tuning-free edits on the demo world under different clip schedules: does the schedule change what an edit
keeps? (issue 11: "partitioned" is as good as the paper's S=M/4 for generation; this checks edits.)

Each rendered shapes-world video is written to mp4 and edited with its own timeline as both source and target
prompt, so a perfect edit gives the source back: PSNR against the decoded source, and the quality bench's
parser metrics (all aligned, identity change, position jump) on the result.

    python bench/quality_edit_schedules.py --videos 3 --frames 32 --steps 10 --out bench/results   # CPU, ~15 min
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from genl.api import run_job  # noqa: E402
from genl.demo.world import long_video_timeline, random_long_video, render_long_video  # noqa: E402
from genl.models import ModelManager  # noqa: E402
from genl.settings import CoDenoiseSettings, EditSettings  # noqa: E402
from genl.video_io import write_mp4  # noqa: E402
from quality_motion import motion_metrics  # noqa: E402

CONFIGS = {"fixed S=4 (the paper's)": dict(stride=4, schedule="fixed"),
           "partitioned S=16": dict(stride=16, schedule="partitioned"),
           "shifted S=16": dict(stride=16, schedule="shifted")}
METRICS = ("psnr", "align_all", "id_change_elsewhere", "jump_elsewhere", "seconds")


def decoded(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=3)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args(argv)
    mm = ModelManager(compile=False)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for v in range(args.videos):
            spec = random_long_video(seed=2000 + v, num_frames=args.frames, num_segments=min(2, args.frames // 16))
            timeline = long_video_timeline(spec)
            path = Path(tmp, f"src{v}.mp4")
            write_mp4(render_long_video(spec, args.size), path, fps=8)
            source = decoded(path).astype(np.float64)
            prompt = " | ".join(f"{a}-{b}: {t}" for a, b, t in timeline)
            for name, cn in CONFIGS.items():
                t0 = time.time()
                settings = EditSettings(video=str(path), source_prompt=prompt, prompt=prompt, num_frames=args.frames,
                                        width=args.size, height=args.size, steps=args.steps, model="demo", seed=1,
                                        fps=8, codenoise=CoDenoiseSettings(clip_length=16, weights="pyramid", **cn))
                out = decoded(run_job(settings, Path(tmp, f"out{v}_{len(rows)}"), models=mm)["video"])
                psnr = 10 * np.log10(255 ** 2 / np.mean((out - source) ** 2))
                m = motion_metrics(out, timeline)
                rows.append({"video": v, "config": name, "psnr": float(psnr), "seconds": time.time() - t0,
                             **{k: float(m[k]) for k in METRICS if k in m}})
                print(json.dumps(rows[-1]), flush=True)
    means = {name: {k: float(np.mean([r[k] for r in rows if r["config"] == name])) for k in METRICS}
             for name in CONFIGS}
    info = {"device": platform.processor() or "cpu", "torch": torch.__version__, "videos": args.videos,
            "frames": args.frames, "steps": args.steps, "size": args.size, "date": time.strftime("%Y-%m-%d")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality_edit_schedules.json").write_text(json.dumps({"info": info, "means": means, "rows": rows}, indent=1))
    lines = ["# Demo-world edits under three clip schedules (source prompt = target prompt)", "",
             "Setup: " + ", ".join(f"{k}={v}" for k, v in info.items()), "",
             "| schedule | PSNR vs source (dB) | all aligned | identity change | position jump | seconds per edit |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {n} | {m['psnr']:.2f} | {m['align_all']:.3f} | {m['id_change_elsewhere']:.3f} | "
              f"{m['jump_elsewhere']:.3f} | {m['seconds']:.1f} |" for n, m in means.items()]
    (out / "quality_edit_schedules.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
