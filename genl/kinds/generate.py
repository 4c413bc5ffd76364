"""Text -> long video: AnimateDiff-style text-to-video, or the tuning-free image-model generator (which
may follow the pose, depth or edges of a reference video through one or several ControlNets)."""
from __future__ import annotations

from pathlib import Path

from ..controlnets import job_control_maps, job_controls
from ..models import DEMO_NAME
from ..sampling import make_scheduler
from ..settings import GenerateSettings, control_specs
from .base import JobContext, demo_notice, load_pipeline, save

Settings = GenerateSettings


def control_cache_dir(settings, ctx: JobContext) -> Path:
    """Extracted control maps live beside the job folders (the studio's private work folder; the CLI's
    output folder), or under the settings' cache folder when it has one."""
    cache = getattr(settings, "cache_dir", "")
    return Path(cache) / "controls" if cache else Path(ctx.out_dir).parent / ".control-cache"


def prepare(settings: GenerateSettings, ctx: JobContext):
    """Validate once; make each control's maps from the reference video (extracted in the worker, cached)."""
    timeline = settings.validate()
    ctx.notices[:0] = demo_notice(settings)
    specs = control_specs(settings)
    inputs = {"timeline": timeline, "specs": specs, "maps": []}
    if specs:
        from ..video_io import read_video

        ref = None
        if settings.control_video:
            ref, _ = read_video(settings.control_video, fps=settings.fps, max_frames=settings.num_frames,
                                size=(settings.width, settings.height))
            if len(ref) < settings.num_frames:
                raise ValueError(f"The reference video has {len(ref)} frames at {settings.fps:g} fps; "
                                 f"the video needs {settings.num_frames}. Make it shorter or lower the fps.")
        inputs["maps"], notes = job_control_maps(specs, ref, control_cache_dir(settings, ctx),
                                                 demo=settings.model == DEMO_NAME, device=settings.device,
                                                 size=(settings.height, settings.width),
                                                 num_frames=settings.num_frames)
        ctx.notices.append("Control maps: " + "; ".join(notes) + ".")
    return settings, inputs


def run(settings: GenerateSettings, inputs: dict, ctx: JobContext):
    pipe = load_pipeline(ctx, settings, settings.pipeline)
    pipe.scheduler = make_scheduler(settings.scheduler, pipe.scheduler.config)
    common = dict(num_frames=settings.num_frames, height=settings.height, width=settings.width,
                  num_inference_steps=settings.steps, guidance_scale=settings.guidance,
                  codenoise=settings.codenoise, seed=settings.seed, callback=ctx.progress,
                  is_cancelled=ctx.is_cancelled)
    if settings.pipeline == "animatediff":
        return pipe(inputs["timeline"], noise_share=settings.noise_share, **common).frames
    controls = job_controls(inputs["specs"], inputs["maps"], pipe, settings.num_frames, ctx.models,
                            demo=ctx.demo_world)
    return pipe(inputs["timeline"], attention=settings.attention, motion=tuple(settings.motion),
                controls=controls, **common).frames


__all__ = ["Settings", "prepare", "run", "save"]
