"""Edit an uploaded video (tuning-free): invert under the source prompt, resample under the target
timeline; optionally only inside an object's masks, optionally keeping the source's pose, depth or edges.
With `tuned` the one-shot-tuned model samples instead (genl/tuning/jobs.py)."""
from __future__ import annotations

import dataclasses

from ..controlnets import job_control_maps, job_controls
from ..models import DEMO_NAME
from ..settings import EditSettings, control_specs
from ..timeline import load_timeline
from ..tuning.jobs import prepare_tuned_edit, run_tuned_edit
from .base import JobContext, demo_notice, load_pipeline, save as save_files
from .generate import control_cache_dir
from .mask_preview import make_masks

Settings = EditSettings


def prepare(settings: EditSettings, ctx: JobContext):
    """Read and trim the video, then validate once: the timeline is checked against its real length."""
    from ..video_io import read_video

    if settings.tuned:  # a one-shot-tuned model (genl/tuning) brings its own size, source and pipeline
        return prepare_tuned_edit(settings, ctx)

    ctx.notices[:0] = demo_notice(settings)
    frames, _ = read_video(settings.video, fps=settings.fps, start=settings.start, end=settings.end,
                           max_frames=settings.max_frames, size=(settings.width, settings.height))
    settings = dataclasses.replace(settings, num_frames=len(frames))
    target = settings.validate()
    specs = control_specs(settings)
    maps, notes = job_control_maps(specs, frames, control_cache_dir(settings, ctx),
                                   demo=settings.model == DEMO_NAME, device=settings.device)
    if specs:
        ctx.notices.append("Control maps: " + "; ".join(notes) + ".")
    return settings, {"frames": frames, "target": target, "specs": specs, "maps": maps,
                      "source": load_timeline(settings.source_prompt).validate(len(frames))}


def run(settings: EditSettings, inputs: dict, ctx: JobContext):
    from ..inversion import InversionCache
    from ..video_io import video_hash

    if settings.tuned:
        return run_tuned_edit(settings, inputs, ctx)
    pipe = load_pipeline(ctx, settings, "edit")
    masks = None
    if settings.masked:  # after loading: the demo world's masks need to know the model used
        masks = make_masks(inputs["frames"], settings.mask_object, settings, ctx, demo=ctx.demo_world).masks
    cache = InversionCache(settings.cache_dir or ctx.out_dir.parent / ".inversion-cache")
    return pipe(inputs["frames"], inputs["source"], inputs["target"], num_inference_steps=settings.steps,
                guidance_scale=settings.guidance, codenoise=settings.codenoise, attention=settings.attention,
                strength=settings.strength, smoothness=settings.smoothness, scheduler=settings.scheduler,
                masks=masks, mask_feather=settings.masks.feather, controls=job_controls(inputs["specs"], inputs["maps"], pipe, len(inputs["frames"]),
                                                   ctx.models, demo=ctx.demo_world),
                cache=cache, cache_id={"video": video_hash(settings.video), "model": settings.model},
                callback=ctx.progress, is_cancelled=ctx.is_cancelled).frames


def save(frames, settings: EditSettings, ctx: JobContext) -> dict:
    """The usual files, and the source's sound over the edited range (frames / fps seconds from the trim start)."""
    from ..video_io import mux_audio

    out = save_files(frames, settings, ctx)
    if settings.video and mux_audio(out["video"], settings.video, start=float(settings.start or 0),
                 duration=len(frames) / float(settings.fps) if settings.fps else None):
        out["notices"] = [*out.get("notices", []), "The source video's sound is kept, trimmed to the edit."]
    return out


__all__ = ["Settings", "prepare", "run", "save"]
