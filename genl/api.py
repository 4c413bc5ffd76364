"""One call per job: settings in, files out. The CLI and the job worker both go through `run_job`.

`run_job` looks the job's kind up in `genl.kinds.KINDS` and runs its four steps: prepare (read inputs,
validate once), run (the pipeline), save. A job writes into its own folder: the mp4, the exact settings as
JSON (so any result can be reproduced), a first-frame thumbnail and the frames as PNGs. Files are complete
before `run_job` returns.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Optional

from .kinds import JobContext, kind_of
from .kinds.base import save_outputs
from .models import DEMO_NAME, ModelManager
from .plan import CoDenoisePlan
from .progress import Cancelled, IsCancelled, Progress
from .settings import EditSettings, GenerateSettings
from .timeline import Timeline, load_timeline

SPEED_RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results" / "speed.json"
# UNet frame-evaluations per second at 512x512 when bench/results/speed.json has no row for the job's setup
RATES = {("cuda", "sd"): 300.0, ("cuda", "animatediff"): 180.0, ("cpu", "sd"): 0.6, ("cpu", "animatediff"): 0.4}
# How much faster the demo model runs than RATES says for SD-1.5-sized models at the same pixels, measured:
# CPU, 2 cores: 15 settled DPM++ steps of the demo web job (2496 frame-evals at 128 px) denoised in ~54 s,
# 46 evals/s = 7.2x RATES' 0.4;
# CUDA: bench/quality.py's 25-step S=4 videos (~16800 evals at 128 px) in 2.1 s on an H200, ~2.8x RATES' 180
# (a tiny model leaves the GPU launch-bound, so it gains far less there than its FLOPs suggest).
DEMO_RATE_FACTOR = {"cpu": 7.5, "cuda": 3.0}


def run_job(settings, out_dir, *, progress: Optional[Progress] = None, is_cancelled: Optional[IsCancelled] = None,
            models: Optional[ModelManager] = None, fallback_to_demo: bool = True, save_frames: bool = True) -> dict:
    """Run any job kind's settings; returns the paths of what it wrote plus notices.

    progress gets one dict per step (genl/progress.py); is_cancelled is checked between window batches,
    steps, decode chunks and file writes, and a cancel raises `Cancelled`.
    """
    kind = kind_of(settings)
    ctx = JobContext(out_dir=Path(out_dir), models=models, progress=progress, is_cancelled=is_cancelled,
                     fallback_to_demo=fallback_to_demo, save_frames=save_frames)
    settings, inputs = kind.prepare(settings, ctx)
    frames = kind.run(settings, inputs, ctx)
    ctx.check_cancel()
    return kind.save(frames, settings, ctx)


@lru_cache(maxsize=2)
def measured_rates(compiled: bool = False) -> dict:
    """(family, schedule, fusion) -> UNet frame-evaluations/s at 512x512 from the GPU speed bench's rows for
    the canonical 128-frame job (bench/results/speed.json), eager or compiled ones; empty when the file is
    missing (an installed package). Rows under a memory cap or at other lengths are left out."""
    try:
        rows = json.loads(SPEED_RESULTS.read_text())["results"]
    except (OSError, ValueError, KeyError):
        return {}
    names = {"paper": "fixed", "shifted": "shifted", "isolated": "fixed", "settled": "settled",
             "partitioned": "partitioned"}
    rates = {}
    for name, row in sorted(rows.items(), key=lambda kv: "isolated" in kv[0]):  # paper/shifted rows win
        if ((row.get("compiled") != "eager") != compiled or row.get("schedule") not in names
                or not row.get("unet_frames_per_s") or row.get("memory_cap_gib") or row.get("frames") != 128):
            continue
        family = "animatediff" if name.startswith("ad_") else "sd"
        rates.setdefault((family, names[row["schedule"]], row["fusion"]), float(row["unet_frames_per_s"]))
    return rates


def compiles_on_gpu() -> bool:
    """Whether the worker compiles its UNets on CUDA (genl.models.ModelManager's default; GENL_COMPILE=0 stops it)."""
    return os.environ.get("GENL_COMPILE", "").strip() != "0"


def estimate(settings) -> dict:
    """Rough time and GPU-memory estimate before running: frame evaluations over the rate measured for the
    job's model family, window schedule and fusion (bench/results/speed.json), or RATES without one."""
    import torch

    cn = settings.codenoise
    plan = CoDenoisePlan.from_settings(cn, settings.num_frames, num_steps=settings.steps)
    windows = plan.windows
    family = "animatediff" if getattr(settings, "pipeline", "") == "animatediff" else "sd"
    motion = getattr(cn, "fusion", "output") == "motion" and family == "animatediff"
    cfg = 2 if settings.guidance > 1 else 1
    if motion:  # spatial layers once per frame per step
        frames_per_pass = settings.steps * settings.num_frames
    else:  # schedules may move their windows every step: count each step's clips
        frames_per_pass = plan.frames_over(settings.steps)
    evals = frames_per_pass * cfg
    if isinstance(settings, EditSettings):
        evals += settings.strength * frames_per_pass
    device = "cuda" if (settings.device in ("auto", "cuda") and torch.cuda.is_available()) else "cpu"
    fusion = "motion" if motion else "output"
    # a schedule without its own row costs per clip what the one it borrows its clips from costs
    keys = [(family, cn.schedule, fusion)] + ([(family, "shifted", fusion)] if cn.schedule != "fixed" else [])
    measured = None
    for k in keys:
        measured = (compiles_on_gpu() and measured_rates(True).get(k)) or measured_rates(False).get(k)
        if measured:
            break
    rate = (measured if device == "cuda" and measured else RATES[(device, family)])
    rate *= (512 * 512) / (settings.width * settings.height)
    if settings.model == DEMO_NAME:
        rate *= DEMO_RATE_FACTOR[device]
    memory_gb = (3.5 if family == "sd" else 5.0) + 0.09 * cn.clip_length * cfg * settings.width * settings.height / 512**2
    return {"frame_evals": int(evals), "windows": len(windows), "seconds": evals / rate,
            "memory_gb": round(memory_gb, 1), "device": device}


def parse_timeline_or_error(text: str, num_frames: int) -> Timeline:
    """For the UI: validate a timeline and return it, raising ValueError with the user's message."""
    return load_timeline(text).validate(num_frames)


__all__ = ["run_job", "estimate", "save_outputs", "Cancelled", "GenerateSettings", "EditSettings"]
