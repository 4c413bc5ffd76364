"""Text -> long video: AnimateDiff-style text-to-video, or the tuning-free image-model generator (which
may follow the edges of a reference video through a ControlNet)."""
from __future__ import annotations

from ..conditions.edges import edge_map
from ..sampling import make_scheduler
from ..settings import GenerateSettings
from .base import JobContext, controlnet_for, demo_notice, load_pipeline, save

Settings = GenerateSettings


def prepare(settings: GenerateSettings, ctx: JobContext):
    """Validate once; read the reference video's edge maps when the job follows edges."""
    timeline = settings.validate()
    ctx.notices[:0] = demo_notice(settings)
    inputs = {"timeline": timeline, "controlnet": controlnet_for(settings), "control_frames": None}
    if settings.control:
        from ..video_io import read_video

        ref, _ = read_video(settings.control_video, fps=settings.fps, max_frames=settings.num_frames,
                            size=(settings.width, settings.height))
        if len(ref) < settings.num_frames:
            raise ValueError(f"The reference video has {len(ref)} frames at {settings.fps:g} fps; "
                             f"the video needs {settings.num_frames}. Make it shorter or lower the fps.")
        inputs["control_frames"] = edge_map(ref)
    return settings, inputs


def run(settings: GenerateSettings, inputs: dict, ctx: JobContext):
    pipe = load_pipeline(ctx, settings, settings.pipeline, inputs["controlnet"])
    pipe.scheduler = make_scheduler(settings.scheduler, pipe.scheduler.config)
    common = dict(num_frames=settings.num_frames, height=settings.height, width=settings.width,
                  num_inference_steps=settings.steps, guidance_scale=settings.guidance,
                  codenoise=settings.codenoise, seed=settings.seed, callback=ctx.progress,
                  is_cancelled=ctx.is_cancelled)
    if settings.pipeline == "animatediff":
        return pipe(inputs["timeline"], **common).frames
    return pipe(inputs["timeline"], attention=settings.attention, motion=tuple(settings.motion),
                control_frames=inputs["control_frames"], control_scale=settings.control_scale, **common).frames


__all__ = ["Settings", "prepare", "run", "save"]
