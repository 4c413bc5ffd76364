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

Window schedules (`--schedule`, comma-separated groups): `classic` the five fixed-window rows above,
`paper` isolated clips + the paper's S=M/4 pyramid (reference rows), `shifted` windows that move every step
(genl.codenoise.shifted_windows) at S=M and S=M/2, `offsets` shifted S=M with every offset sequence of
SHIFT_OFFSETS, `settled` overlapping fixed clips for the first steps then shifted S=M (genl/plan.py),
`motion` fusion inside the motion modules (genl.motion_windows). With `--seeds K` every video is generated
with K seeds and each metric is reported as mean and spread (std over seeds of the per-seed means);
seconds_per_video is the mean wall time.

    python bench/quality.py --videos 12 --out bench/results            # GPU, or CPU (slow)
    python bench/quality.py --schedule paper,shifted,motion --seeds 3 --videos 16 --size 128 --out bench/results
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from genl.models import ModelManager  # noqa: E402
from genl.timeline import Timeline  # noqa: E402
from genl.demo.world import long_video_timeline, parse_caption, random_long_video, render_long_video  # noqa: E402
from genl.demo.world_parse import parse_frame  # noqa: E402
from genl.codenoise import SHIFT_OFFSETS, offset_windows  # noqa: E402
from genl.codenoise import make_windows  # noqa: E402
from genl.plan import SCHEDULES, settle_steps, settled_schedule_for  # noqa: E402
from genl.settings import CoDenoiseSettings  # noqa: E402


def _offset_schedule(offset):
    def schedule(num_frames, length, stride, step, *, loop=False):
        if loop:
            raise ValueError("Shifted schedules cannot loop.")
        return offset_windows(num_frames, length, stride, offset(step, stride, length))
    return schedule


# experiments only: every offset sequence of SHIFT_OFFSETS as a plan schedule ("shifted" is the golden one)
for _name, _offset in SHIFT_OFFSETS.items():
    SCHEDULES.setdefault(f"shifted-{_name}", _offset_schedule(_offset))

# experiments only: "settled" with other shares of overlapping first steps and their strides (name: share %, M/d)
SETTLED_VARIANTS = [(0.2, 2), (0.1, 4), (0.2, 4)]
for _share, _div in SETTLED_VARIANTS:
    SCHEDULES.setdefault(f"settled-{round(_share * 100)}-{_div}", settled_schedule_for(_share, _div))


def _bookend_schedule(share: float, divisor: int):
    """Experiment: settled, and the last `share` of the steps overlapping fixed clips again (seams smoothed)."""
    settled = settled_schedule_for(share, divisor)

    def bookend(num_frames, length, stride, step, *, loop=False, num_steps=0):
        if num_steps and step >= num_steps - settle_steps(num_steps, share):
            return make_windows(num_frames, length, min(stride, max(1, int(length) // divisor)))
        return settled(num_frames, length, stride, step, loop=loop, num_steps=num_steps)

    return bookend


SCHEDULES.setdefault("bookend-10-2", _bookend_schedule(0.1, 2))

# name, M, S, weights, window schedule (genl/plan.py SCHEDULES), fusion ("output": model outputs per clip,
# "motion": inside the motion modules). Every row is a LongAnimateDiffPipeline call with these settings.
GROUPS = {
    "classic": [
        ("isolated (S=M)", 16, 16, "flat", "fixed", "output"),
        ("co-denoise S=M/2 flat", 16, 8, "flat", "fixed", "output"),
        ("co-denoise S=M/4 flat", 16, 4, "flat", "fixed", "output"),
        ("co-denoise S=M/4 gaussian", 16, 4, "gaussian", "fixed", "output"),
        ("co-denoise S=M/4 pyramid", 16, 4, "pyramid", "fixed", "output"),
    ],
    "paper": [
        ("isolated (S=M)", 16, 16, "flat", "fixed", "output"),
        ("co-denoise S=M/4 pyramid", 16, 4, "pyramid", "fixed", "output"),
    ],
    "shifted": [
        ("shifted S=M pyramid", 16, 16, "pyramid", "shifted", "output"),
        ("shifted S=M/2 pyramid", 16, 8, "pyramid", "shifted", "output"),
    ],
    "offsets": [(f"shifted S=M pyramid, {k} offsets", 16, 16, "pyramid", f"shifted-{k}", "output")
                for k in SHIFT_OFFSETS],
    "settled": [("settled: first 10% S=M/2 then shifted S=M", 16, 16, "pyramid", "settled", "output")]
    + [(f"settled: first {round(a * 100)}% S=M/{d} then shifted S=M", 16, 16, "pyramid",
        f"settled-{round(a * 100)}-{d}", "output") for a, d in SETTLED_VARIANTS]
    + [("settled + last 10% S=M/2", 16, 16, "pyramid", "bookend-10-2", "output")],
    "partitioned": [("partitioned S=M (disjoint moving clips; image models)", 16, 16, "pyramid", "partitioned",
                     "output")],
    "motion": [
        ("motion modules S=M/4 pyramid", 16, 4, "pyramid", "fixed", "motion"),
        ("motion modules shifted S=M pyramid", 16, 16, "pyramid", "shifted", "motion"),
        ("motion modules settled S=M pyramid", 16, 16, "pyramid", "settled", "motion"),
    ],
}
CONFIGS = GROUPS["classic"]
SPREAD = ("align_all", "id_change_at_seams", "id_change_elsewhere", "jump_at_seams", "jump_elsewhere",
          "jump_at_transitions")


def configs_for(schedule: str) -> list[tuple]:
    rows, seen = [], set()
    for group in [g.strip() for g in schedule.split(",") if g.strip()]:
        if group not in GROUPS:
            raise ValueError(f"Unknown schedule group '{group}'. Choose from: {', '.join(GROUPS)}.")
        for row in GROUPS[group]:
            if row[0] not in seen:
                seen.add(row[0])
                rows.append(row)
    return rows


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
    ap.add_argument("--seeds", type=int, default=1, help="seeds per video; metrics get a spread over seeds")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--guidance", type=float, default=4.0)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=0, help="force every video to this length (0: the world's)")
    ap.add_argument("--schedule", default="classic", help=f"comma-separated groups of: {', '.join(GROUPS)}")
    ap.add_argument("--pipeline", default="animatediff", choices=["animatediff", "tuning_free"])
    ap.add_argument("--model", default="demo")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--skip", default="", help="comma-separated config names to leave out (e.g. 'shifted S=M/2 pyramid')")
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args()
    skip = {name.strip() for name in args.skip.split(",") if name.strip()}
    configs = [c for c in configs_for(args.schedule) if c[0] not in skip]
    if args.pipeline != "animatediff" and any(c[5] == "motion" for c in configs):
        raise SystemExit("Motion-module fusion is measured on the animatediff pipeline.")
    # eager: many videos of different lengths would each recompile a compiled UNet (two GPU runs of this
    # bench ran out of time compiling)
    mm = ModelManager(compile=False)
    pipe = mm.get(args.pipeline, args.model, device=args.device)
    specs = [random_long_video(seed=1000 + v, num_frames=args.frames or None) for v in range(args.videos)]
    # reference row: the world's own rendering of the same timelines (what a perfect generator would score)
    truth = [video_metrics(render_long_video(spec, size=args.size), long_video_timeline(spec), 16) for spec in specs]
    rows = [{"config": "rendered ground truth", "M": 16, "S": 16, "weights": "-", "schedule": "-",
             "fusion": "-", "seconds_per_video": 0.0}
            | {k: float(np.nanmean([r[k] for r in truth])) for k in truth[0]}]
    info = write_results(args, rows)
    for name, m, s, weights, schedule, fusion in configs:
        per_seed, seconds = [], []
        for k in range(args.seeds):
            per_video = []
            for v, spec in enumerate(specs):
                timeline = long_video_timeline(spec)
                tl = Timeline.from_rows(timeline)
                seed = v + 1000 * k
                t0 = time.perf_counter()
                codenoise = CoDenoiseSettings(clip_length=m, stride=s, weights=weights, schedule=schedule,
                                              fusion=fusion)
                frames = pipe(tl, num_frames=spec.num_frames, height=args.size, width=args.size,
                              num_inference_steps=args.steps, guidance_scale=args.guidance, codenoise=codenoise,
                              seed=seed).frames
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                seconds.append(time.perf_counter() - t0)
                per_video.append(video_metrics(frames, timeline, m))
            per_seed.append({key: float(np.nanmean([r[key] for r in per_video])) for key in per_video[0]})
        row = {"config": name, "M": m, "S": s, "weights": weights, "schedule": schedule, "fusion": fusion,
               "seconds_per_video": float(np.mean(seconds))}
        row |= {key: float(np.mean([r[key] for r in per_seed])) for key in per_seed[0]}
        row |= {key + "_spread": float(np.std([r[key] for r in per_seed])) for key in SPREAD}
        rows.append(row)
        print(json.dumps(row), flush=True)
        info = write_results(args, rows)  # after every row: a run cut short keeps what it measured
    print(quality_markdown(info, rows, args.seeds > 1))


def write_results(args, rows: list[dict]) -> dict:
    info = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu",
            "torch": torch.__version__, "pipeline": args.pipeline, "model": args.model, "videos": args.videos,
            "seeds": args.seeds, "steps": args.steps, "guidance": args.guidance, "size": args.size,
            "schedule": args.schedule, "skip": args.skip, "frames": args.frames, "date": time.strftime("%Y-%m-%d")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"quality_{args.pipeline}" + ("" if args.schedule == "classic" else "_" + args.schedule.replace(",", "-"))
    (out / f"{stem}.json").write_text(json.dumps({"info": info, "rows": rows}, indent=2))
    (out / f"{stem}.md").write_text(quality_markdown(info, rows, args.seeds > 1))
    return info


def quality_markdown(info: dict, rows: list[dict], spread: bool) -> str:
    cols = ["config", "align_all", "align_colour", "align_shape", "align_background", "id_change_at_seams",
            "id_change_elsewhere", "jump_at_seams", "jump_elsewhere", "jump_at_transitions", "seconds_per_video"]

    def cell(r, c):
        if isinstance(r[c], str):
            return r[c]
        if spread and c + "_spread" in r:
            return f"{r[c]:.3f} ± {r[c + '_spread']:.3f}"
        return f"{r[c]:.3f}"

    lines = [f"# Quality on the synthetic world ({info['pipeline']}, {info['model']})", "",
             "Setup: " + ", ".join(f"{k}={v}" for k, v in info.items()), ""]
    if spread:
        lines += ["Cells: mean ± std over seeds of the per-seed mean over videos.", ""]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(cell(r, c) for c in cols) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
