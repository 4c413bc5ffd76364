"""One-shot tuning with clip identifiers on the demo world (issue 14; paper Fig. 4).

A long synthetic video whose segments share nearly the same prompt ("a red circle moving right / down /
left over grass") is tuned on, then generated from *random noise* with the source timeline:
- tuned, with identifiers     (paper: follows the source motion per clip)
- tuned, without identifiers  (paper: fails to reproduce consecutive motion)
- tuning-free generation      (image model + cross-frame attention, no tuning)
- tuning-free edit            (DDIM inversion of the source, resampled; follows motion by construction)
Trajectory error per clip F_i = mean distance between parsed object centroids (genl.demo.world_parse) of
the generated and the source frames (frames with no object count as error 1). Then the colour is edited
through the timeline (red -> blue) from the tuned model: parsed colour accuracy and trajectory error
(motion kept). With --dropouts several identifier dropout rates are tuned and compared.

    python bench/tuning_demo.py --smoke                   # CPU, minutes: checks the script runs
    python bench/tuning_demo.py --out bench/results       # GPU
"""
from __future__ import annotations

import argparse
import copy
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

from genl.codenoise import make_windows  # noqa: E402
from genl.demo.world import LongVideoSpec, Segment, long_video_timeline, render_long_video  # noqa: E402
from genl.demo.world_parse import parse_frame  # noqa: E402
from genl.models import ModelManager  # noqa: E402
from genl.pipelines.tuned import LongTunedPipeline  # noqa: E402
from genl.settings import CoDenoiseSettings  # noqa: E402
from genl.timeline import Timeline  # noqa: E402
from genl.tuning.settings import TuneSettings  # noqa: E402
from genl.tuning.train import tune  # noqa: E402

EXAMPLE = ROOT / "assets" / "examples" / "red_circle_turns.mp4"


def source_spec(frames_per_segment: int) -> LongVideoSpec:
    n = frames_per_segment
    return LongVideoSpec((Segment(0, n - 1, "red", "circle", "right", "grass"),
                          Segment(n, 2 * n - 1, "red", "circle", "down", "grass"),
                          Segment(2 * n, 3 * n - 1, "red", "circle", "left", "grass")),
                         x0=0.25, y0=0.3, size=0.24, seed=11)


def centroids(frames: np.ndarray) -> list:
    out = []
    for f in frames:
        p = parse_frame(f)
        out.append((p.x, p.y, p.colour))
    return out


def trajectory_error(gen: list, src: list, windows) -> dict:
    """Per clip mean centroid distance to the source; a frame without an object counts 1."""
    per_frame = [1.0 if g[0] is None or s[0] is None else float(np.hypot(g[0] - s[0], g[1] - s[1]))
                 for g, s in zip(gen, src)]
    per_clip = [float(np.mean(per_frame[a:b])) for a, b in windows]
    return {"mean": float(np.mean(per_frame)), "per_clip": [round(v, 4) for v in per_clip],
            "detected": float(np.mean([g[0] is not None for g in gen]))}


def image_components(models, device, precision):
    pipe = models.get("tuning_free", "demo", device=device, precision=precision)
    return pipe, {k: getattr(pipe, k) for k in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run: 2 segments of 8 frames, 2 steps")
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--steps", type=int, default=25, help="sampling steps")
    ap.add_argument("--seeds", type=int, default=3, help="random-noise seeds per variant")
    ap.add_argument("--method", default="lora", choices=["lora", "full"])
    ap.add_argument("--lr", type=float, default=None, help="per-clip lr (default: the settings' default)")
    ap.add_argument("--dropouts", default="0.1", help="identifier dropout rates to tune and compare, e.g. 0,0.1,0.3")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True

    per_seg, M, S = (8, 8, 4) if args.smoke else (16, 16, 4)
    spec = source_spec(per_seg)
    frames = render_long_video(spec, size=128)
    if not args.smoke and not EXAMPLE.exists():
        from genl.video_io import write_mp4

        write_mp4(frames, EXAMPLE, fps=8)
    if args.smoke:
        spec = LongVideoSpec(spec.segments[:2], spec.x0, spec.y0, spec.size, spec.seed)
        frames = frames[:spec.num_frames]
    timeline_rows = long_video_timeline(spec)
    source = Timeline.from_rows(timeline_rows)
    edit = Timeline.from_rows([(a, b, cap.replace("red", "blue")) for a, b, cap in timeline_rows])
    n = len(frames)
    windows = make_windows(n, M, S)
    src = centroids(frames)
    cn = CoDenoiseSettings(clip_length=M, stride=S)
    models = ModelManager()
    device = args.device
    steps = 2 if args.smoke else args.steps
    seeds = list(range(1 if args.smoke else args.seeds))
    base_pipe, comps = image_components(models, device, "fp32")
    dev = comps["unet"].device
    result = {"video": {"frames": n, "M": M, "S": S, "timeline": timeline_rows,
                        "example": str(EXAMPLE.relative_to(ROOT)) if EXAMPLE.exists() else None},
              "steps": steps, "seeds": seeds, "method": args.method, "runs": {}}

    def generate(pipe_call, label):
        errs, colours, seconds = [], [], []
        for seed in seeds:
            t = time.time()
            out = pipe_call(seed)
            seconds.append(time.time() - t)
            gen = centroids(out.frames)
            errs.append(trajectory_error(gen, src, windows))
            colours.append(gen)
        mean = float(np.mean([e["mean"] for e in errs]))
        per_clip = np.mean([e["per_clip"] for e in errs], axis=0).round(4).tolist()
        print(f"  {label}: trajectory error {mean:.4f} per clip {per_clip}", flush=True)
        return {"trajectory_error": round(mean, 4), "per_clip": per_clip,
                "detected": round(float(np.mean([e["detected"] for e in errs])), 3),
                "seconds": round(float(np.mean(seconds)), 2)}, colours

    # baselines without tuning
    from genl.pipelines import LongTuningFreePipeline, LongVideoEditPipeline

    parts = dict(comps)
    tf = LongTuningFreePipeline(**parts)
    result["runs"]["tuning-free generation"], _ = generate(
        lambda seed: tf(source, num_frames=n, height=128, width=128, num_inference_steps=steps, codenoise=CoDenoiseSettings(clip_length=M, stride=S),
                        seed=seed), "tuning-free generation")
    ed = LongVideoEditPipeline(**parts)
    result["runs"]["tuning-free edit (inversion)"], _ = generate(
        lambda seed: ed(frames, source, source, num_inference_steps=steps,
                     codenoise=CoDenoiseSettings(clip_length=M, stride=S)),
        "tuning-free edit (inversion)")
    from genl.attention import reset_attention

    reset_attention(comps["unet"])

    tunings = {}
    for rate in [float(r) for r in args.dropouts.split(",")]:
        folder = Path(args.out) / "tunings" / f"demo-{args.method}-drop{rate:g}{'-smoke' if args.smoke else ''}"
        kw = dict(learning_rate=args.lr) if args.lr else {}
        settings = TuneSettings(video=str(EXAMPLE), prompt="(timeline)", model="demo", clip_length=M, stride=S,
                                width=128, height=128, method=args.method, identifier_dropout=rate,
                                epochs=args.epochs, max_steps=2 if args.smoke else None, seed=0, **kw)
        tuned_comps = dict(comps, unet=copy.deepcopy(comps["unet"]))
        t = time.time()
        meta = tune(tuned_comps, frames, source, settings, folder)
        tune_seconds = time.time() - t
        print(f"dropout {rate}: {meta['step']} steps in {tune_seconds:.0f}s ({meta['stop_reason']}), "
              f"loss {np.mean(meta['losses'][:5]):.4f} -> {np.mean(meta['losses'][-5:]):.4f}", flush=True)
        pipe = LongTunedPipeline.from_tuning(folder, comps)
        entry = {"tune_steps": meta["step"], "tune_seconds": round(tune_seconds, 1),
                 "stop_reason": meta["stop_reason"], "loss_first": round(float(np.mean(meta["losses"][:5])), 4),
                 "loss_last": round(float(np.mean(meta["losses"][-5:])), 4)}
        call = dict(num_frames=n, height=128, width=128, num_inference_steps=steps, codenoise=cn)
        entry["with identifiers"], _ = generate(lambda seed: pipe(source, seed=seed, **call), "tuned, with ids")
        entry["without identifiers"], _ = generate(lambda seed: pipe(source, seed=seed, use_identifiers=False,
                                                                     **call), "tuned, without ids")
        edited, cols = generate(lambda seed: pipe(edit, seed=seed, **call), "tuned edit red->blue")
        edited["colour_accuracy"] = round(float(np.mean([c[2] == "blue" for gen in cols for c in gen])), 3)
        entry["edit red->blue (noise, with ids)"] = edited
        inv, cols = generate(lambda seed: pipe(edit, source_frames=frames, source=source, **call),
                             "tuned edit red->blue from inversion")
        inv["colour_accuracy"] = round(float(np.mean([c[2] == "blue" for gen in cols for c in gen])), 3)
        entry["edit red->blue (inversion, with ids)"] = inv
        tunings[f"dropout {rate:g}"] = entry
    result["runs"]["tuned"] = tunings
    result["env"] = {"device": torch.cuda.get_device_name() if dev.type == "cuda" else platform.processor() or "cpu",
                     "torch": torch.__version__, "python": platform.python_version(),
                     "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                              text=True).stdout.strip(), "smoke": args.smoke}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "tuning_demo_smoke.json" if args.smoke else "tuning_demo.json"
    (out / name).write_text(json.dumps(result, indent=1))
    print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
