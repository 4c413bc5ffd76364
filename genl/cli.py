"""Command line: `python -m genl generate ...`, `python -m genl edit ...` (`--tuned` for a tuned model) and
`python -m genl tune ...` (one-shot tuning, genl/tuning/cli.py).

Same seed and settings give the same video. Errors a user can cause print one clear line and exit 2.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .attention import MODES
from .codenoise import WEIGHT_SCHEMES
from .conditions.mask_settings import METHODS, MaskSettings
from .controlnets import CONTROL_TYPES
from .plan import SCHEDULES
from .settings import FUSIONS, PRECISIONS, SCHEDULERS, CoDenoiseSettings, EditSettings, GenerateSettings
from .tuning.cli import add_tune_parser, add_tuned_edit_args, run_tune

# Every default below comes from the settings dataclasses: each is written once, there.
G, E, CN = GenerateSettings, EditSettings, CoDenoiseSettings


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompt", required=True,
                   help="a prompt, a timeline like '0-47: a jeep, sunny | 48-95: a jeep at night', "
                        "keyframes '0: ... | 64: ...', or a .json timeline file")
    p.add_argument("--negative", default="", help="negative prompt for segments that have none")
    p.add_argument("--model", default=G.model, help="hub id, local folder, .safetensors file, or 'demo'")
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--height", type=int, default=None)
    p.add_argument("--fps", type=float, default=G.fps)
    p.add_argument("--steps", type=int, default=G.steps)
    p.add_argument("--guidance", type=float, default=G.guidance)
    p.add_argument("--scheduler", choices=SCHEDULERS, default=G.scheduler)
    p.add_argument("--seed", type=int, default=G.seed)
    p.add_argument("--device", default=G.device, help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--precision", choices=PRECISIONS, default=G.precision)
    p.add_argument("-M", "--clip-length", type=int, default=CN.clip_length, help="frames per clip (M)")
    p.add_argument("-S", "--stride", type=int, default=CN.stride, help="frames between clip starts (S); S=M isolates clips")
    p.add_argument("--weights", choices=WEIGHT_SCHEMES, default=CN.weights)
    p.add_argument("--windows-per-call", type=int, default=CN.windows_per_call, help="clips per model call (default: from memory)")
    p.add_argument("--interpolation", choices=["linear", "slerp"], default=CN.interpolation)
    p.add_argument("--schedule", choices=list(SCHEDULES), default=CN.schedule,
                   help="which clips each step denoises: fixed (the paper's), shifted (they move every step), "
                        "settled (overlapping for the first tenth of the steps, then moving), partitioned "
                        "(disjoint clips whose cuts move; image models, S=M)")
    p.add_argument("--fusion", choices=FUSIONS, default=CN.fusion,
                   help="where clips are fused: model outputs (the paper's) or inside the motion modules "
                        "(text-to-video models; with --schedule settled -S 16 the studio's fast default)")
    p.add_argument("--max-frames", type=int, default=G.max_frames)
    p.add_argument("--out", default="outputs/cli", help="folder for video.mp4, settings.json, frames/")
    p.add_argument("--no-demo-fallback", action="store_true",
                   help="fail instead of using the bundled demo model when --model is not available")
    p.add_argument("--control", action="append", choices=list(CONTROL_TYPES), default=[],
                   help="follow pose, edges or depth (repeatable: several ControlNets at once)")
    p.add_argument("--controlnet", action="append", default=[],
                   help="ControlNet per --control (hub id, folder, 'demo', 'demo-pose'); default: the type's own")
    p.add_argument("--control-strength", "--control-scale", action="append", type=float, default=[],
                   help="strength per --control (0-2; one value applies to all)")
    p.add_argument("--control-start", action="append", type=float, default=[],
                   help="fraction of the steps after which each control starts (0-1)")
    p.add_argument("--control-end", action="append", type=float, default=[],
                   help="fraction of the steps after which each control stops (0-1)")
    p.add_argument("--control-maps", action="append", default=[],
                   help="a ready control video per --control (used as is instead of extracting)")
    p.add_argument("--detector", action="append", default=[], help="detector per --control (e.g. openpose)")
    p.add_argument("--gpus", type=int, default=1,
                   help="spread the clips over N GPUs, one process each (with --device cpu: N CPU processes)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m genl", description="Gen-L Studio: long multi-prompt videos.")
    sub = ap.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="text -> long video")
    _common(g)
    g.add_argument("--frames", type=int, default=G.num_frames, help="video length in frames")
    g.add_argument("--pipeline", choices=["animatediff", "tuning_free"], default=G.pipeline,
                   help="animatediff: text-to-video model; tuning_free: image model + cross-frame attention")
    g.add_argument("--motion-adapter", default="", help="AnimateDiff motion module (hub id or folder)")
    g.add_argument("--attention", choices=MODES, default=G.attention)
    g.add_argument("--noise-share", type=float, default=G.noise_share,
                   help="animatediff: share (0-1) of the starting noise common to all frames; more keeps objects "
                        "steadier and in place, less lets them move (0: independent frames)")
    g.add_argument("--loop", action="store_true", help="wrap clips around the end for a seamless loop")
    g.add_argument("--control-video", default="", help="reference video whose pose/edges/depth --control follows")
    e = sub.add_parser("edit", help="edit an uploaded video with a new prompt timeline (tuning-free)")
    _common(e)
    e.add_argument("--video", default="", help="the video to edit (not needed with --tuned --from-noise)")
    e.add_argument("--source-prompt", default="",
                   help="what the input video shows (optional with --tuned: the tuning's prompt is used)")
    e.add_argument("--start", type=float, default=E.start, help="trim start, seconds")
    e.add_argument("--end", type=float, default=E.end, help="trim end, seconds")
    e.add_argument("--strength", type=float, default=E.strength, help="how much of the schedule to re-noise (0-1]")
    e.add_argument("--smoothness", type=float, default=E.smoothness, help="adjacent-frame distance penalty (0 = off)")
    e.add_argument("--attention", choices=MODES, default=E.attention)
    e.add_argument("--cache-dir", default="", help="inversion cache folder")
    e.add_argument("--mask-object", default="", help="edit only this object, e.g. 'the red circle'")
    e.add_argument("--mask-method", choices=METHODS, default=MaskSettings.method,
                   help="how the object's masks are made (grounded_sam2: GroundingDINO + SAM 2; sam3: SAM 3's own "
                        "text-prompted video segmentation; 'upload': give --mask-video)")
    e.add_argument("--mask-video", default="", help="a mask video (white = edit) for --mask-method upload")
    add_tuned_edit_args(e)
    add_tune_parser(sub)
    return ap


def settings_from_args(args) -> object:
    cn = CoDenoiseSettings(clip_length=args.clip_length, stride=args.stride, weights=args.weights,
                           loop=getattr(args, "loop", False), windows_per_call=args.windows_per_call,
                           interpolation=args.interpolation, schedule=args.schedule, fusion=args.fusion)
    demo = args.model == "demo"
    size = dict(width=args.width or (128 if demo else 512), height=args.height or (128 if demo else 512))
    common = dict(prompt=args.prompt, negative_prompt=args.negative, fps=args.fps, steps=args.steps,
                  guidance=args.guidance, scheduler=args.scheduler, seed=args.seed, model=args.model,
                  precision=args.precision, device=args.device, max_frames=args.max_frames, codenoise=cn,
                  controls=controls_from_args(args), **size)
    if args.command == "generate":
        return GenerateSettings(num_frames=args.frames, pipeline=args.pipeline, motion_adapter=args.motion_adapter,
                                attention=args.attention, control_video=args.control_video,
                                noise_share=args.noise_share, **common)
    return EditSettings(video=args.video, source_prompt=args.source_prompt, start=args.start, end=args.end,
                        strength=args.strength, smoothness=args.smoothness, attention=args.attention,
                        cache_dir=args.cache_dir, mask_object=args.mask_object,
                        masks=MaskSettings(method=args.mask_method, upload=args.mask_video),
                        tuned=args.tuned, use_identifiers=not args.no_identifiers, from_noise=args.from_noise,
                        **common)


def controls_from_args(args) -> list:
    """One ControlSpec dict per --control; each per-control flag gives one value per control, or one for all."""
    n = len(args.control)

    def pick(values, name, k, default):
        if len(values) not in (0, 1, n):
            raise ValueError(f"Give --{name} once, or once per --control ({n}).")
        return values[k if len(values) == n else 0] if values else default

    return [{"type": kind, "model": pick(args.controlnet, "controlnet", k, ""),
             "strength": pick(args.control_strength, "control-strength", k, 1.0),
             "start": pick(args.control_start, "control-start", k, 0.0),
             "end": pick(args.control_end, "control-end", k, 1.0),
             "video": pick(args.control_maps, "control-maps", k, ""), "detector": pick(args.detector, "detector", k, "")}
            for k, kind in enumerate(args.control)]


class _Bars:
    """One tqdm bar per stage (inversion / denoise / decode)."""

    def __init__(self):
        self.bars = {}

    def __call__(self, event: dict) -> None:
        from tqdm import tqdm

        stage = event["stage"]
        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(total=event["total"], desc=stage, unit="step", file=sys.stderr)
        bar.n = event["step"]
        bar.refresh()

    def close(self):
        for bar in self.bars.values():
            bar.close()


def check_before_work(args, settings) -> None:
    """Errors a user can cause, found before any model loads: numbers, the timeline, the output folder."""
    from .validation import check_numbers

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out must be a folder, but '{out}' is an existing file. Choose another path.")
    check_numbers(settings)
    if not isinstance(settings, EditSettings):  # an edit's length is known once its video is read
        settings.validate()


def _rank(ctx, settings, out: str, fallback: bool):
    """One rank of `--gpus N`: the same job on this rank's device; rank 0 shows the bars and writes."""
    from .api import run_job

    settings.device = str(ctx.device)
    bars = _Bars() if ctx.is_main else None
    try:
        return run_job(settings, Path(out), progress=bars, is_cancelled=ctx.is_cancelled, fallback_to_demo=fallback)
    finally:
        if bars is not None:
            bars.close()


def run_ranks(args, settings, bars) -> dict:
    """`--gpus N`: N spawned ranks (cuda:0..N-1, or gloo processes with --device cpu), or this process as
    one rank of a torchrun job (RANK set). Only rank 0 writes; returns its result (None on other ranks)."""
    import torch

    from .distributed import DistributedContext, launch

    fallback = not args.no_demo_fallback
    cpu = str(args.device).startswith("cpu")
    if "RANK" in os.environ:  # started by torchrun: one rank per process already
        ctx = DistributedContext.from_env("cpu" if cpu else None)
        try:
            return _rank(ctx, settings, args.out, fallback)
        except Exception:
            ctx.close(abort=True)
            raise
        finally:
            ctx.close()
    if args.gpus < 1:
        raise ValueError(f"--gpus must be at least 1 (got {args.gpus}).")
    if not cpu and args.gpus > torch.cuda.device_count():
        raise ValueError(f"--gpus {args.gpus} asks for {args.gpus} GPUs but {torch.cuda.device_count()} are "
                         "visible; use fewer, or --device cpu to run that many CPU processes.")
    threads = max(1, (os.cpu_count() or 1) // args.gpus) if cpu else None
    bars.close()
    return launch(_rank, args.gpus, settings, args.out, fallback, device_type="cpu" if cpu else "cuda",
                  threads=threads)[0]


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "tune":
        return run_tune(args)
    from .api import run_job
    from .distributed import RankDone, RankFailed

    bars = _Bars()
    started = time.monotonic()
    try:
        settings = settings_from_args(args)
        check_before_work(args, settings)
        if args.gpus > 1 or "RANK" in os.environ:
            result = run_ranks(args, settings, bars)
        else:
            result = run_job(settings, Path(args.out), progress=bars, fallback_to_demo=not args.no_demo_fallback)
    except RankDone:  # a torchrun rank other than 0: its share is done, rank 0 writes and reports
        return 0
    except RankFailed as err:  # one rank of --gpus N failed: every rank stopped; say which and why
        bars.close()
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 1
    except ValueError as err:
        bars.close()
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        bars.close()
        print("cancelled", file=sys.stderr)
        return 130
    except RuntimeError as err:  # torch.cuda.OutOfMemoryError is a RuntimeError
        if "out of memory" not in str(err).lower():
            raise
        bars.close()
        print("error: the GPU ran out of memory. Try fewer frames, a smaller size, --windows-per-call 1 "
              "or --precision fp16.", file=sys.stderr)
        return 2
    bars.close()
    for notice in result["notices"]:
        print(f"note: {notice}", file=sys.stderr)
    print(f"wrote {result['video']} ({result['num_frames']} frames) and {result['settings']} "
          f"in {time.monotonic() - started:.1f} s")
    return 0
