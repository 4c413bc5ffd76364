"""Edit an uploaded video (tuning-free): invert under the source prompt, resample under the target
timeline; optionally only inside an object's masks, optionally keeping the source's edges."""
from __future__ import annotations

import dataclasses

from ..conditions.edges import edge_map
from ..conditions.masks import object_masks
from ..settings import EditSettings
from ..timeline import load_timeline
from .base import JobContext, controlnet_for, demo_notice, load_pipeline, save as save_files

Settings = EditSettings


def prepare(settings: EditSettings, ctx: JobContext):
    """Read and trim the video, then validate once: the timeline is checked against its real length."""
    from ..video_io import read_video

    ctx.notices[:0] = demo_notice(settings)
    controlnet = controlnet_for(settings)
    frames, _ = read_video(settings.video, fps=settings.fps, start=settings.start, end=settings.end,
                           max_frames=settings.max_frames, size=(settings.width, settings.height))
    settings = dataclasses.replace(settings, num_frames=len(frames))
    target = settings.validate()
    return settings, {"frames": frames, "controlnet": controlnet, "target": target,
                      "source": load_timeline(settings.source_prompt).validate(len(frames)),
                      "control_frames": edge_map(frames) if settings.control else None}


def run(settings: EditSettings, inputs: dict, ctx: JobContext):
    from ..inversion import InversionCache
    from ..video_io import video_hash

    pipe = load_pipeline(ctx, settings, "edit", inputs["controlnet"])
    masks = None
    if settings.mask_object:  # after loading: the demo world's stand-in masks need to know the model used
        found = object_masks(inputs["frames"], settings.mask_object, settings.mask_method, demo=ctx.demo_world)
        masks = found.masks
        ctx.notices.append(f"Object masks: {found.note}.")
    cache = InversionCache(settings.cache_dir or ctx.out_dir.parent / ".inversion-cache")
    return pipe(inputs["frames"], inputs["source"], inputs["target"], num_inference_steps=settings.steps,
                guidance_scale=settings.guidance, codenoise=settings.codenoise, attention=settings.attention,
                strength=settings.strength, smoothness=settings.smoothness, scheduler=settings.scheduler,
                masks=masks, control_frames=inputs["control_frames"], control_scale=settings.control_scale,
                cache=cache, cache_id={"video": video_hash(settings.video), "model": settings.model},
                callback=ctx.progress, is_cancelled=ctx.is_cancelled).frames


def save(frames, settings: EditSettings, ctx: JobContext) -> dict:
    """The usual files, and the source's sound over the edited range (frames / fps seconds from the trim start)."""
    from ..video_io import mux_audio

    out = save_files(frames, settings, ctx)
    if mux_audio(out["video"], settings.video, start=float(settings.start or 0),
                 duration=len(frames) / float(settings.fps) if settings.fps else None):
        out["notices"] = [*out.get("notices", []), "The source video's sound is kept, trimmed to the edit."]
    return out


__all__ = ["Settings", "prepare", "run", "save"]
