"""One-shot tuning on a long video (paper Sec. 4) as a job kind: the tuned weights go to the tuning store.

The store folder is keyed by the video's content and every weight setting (genl/tuning/store.py), so
running the same settings again resumes from the last checkpoint, and a cancelled tuning stays usable
from its last saved step. Progress is the trainer's {"stage": "tune", step, total, loss, rate, eta}.
The job's own video is the (trimmed, resized) footage the tuning learned from.
"""
from __future__ import annotations

from ..tuning.jobs import run_tune_job, source_frames
from ..tuning.settings import TuneSettings
from .base import JobContext, save

Settings = TuneSettings


def prepare(settings: TuneSettings, ctx: JobContext):
    """Validate once, read the trimmed video and check the source timeline against its length."""
    settings.validate()
    frames, timeline = source_frames(settings)
    return settings, {"frames": frames, "timeline": timeline}


def run(settings: TuneSettings, inputs: dict, ctx: JobContext):
    meta = run_tune_job(settings, progress=ctx.progress, is_cancelled=ctx.is_cancelled, models=ctx.models,
                        frames=inputs["frames"], timeline=inputs["timeline"])
    losses = meta.get("losses") or [float("nan")]
    ctx.outputs.update(tuning=meta["folder"], steps=meta["step"], loss=losses[-1], stop_reason=meta["stop_reason"])
    ctx.notices.append(f"Tuned for {meta['step']} steps ({meta['stop_reason']}); final loss {losses[-1]:.4f}. "
                       "Pick it under 'Use a tuning for an edit'.")
    return inputs["frames"]


__all__ = ["Settings", "prepare", "run", "save"]
