"""Light kind: a video's pose / depth / edge maps, made (and cached) as the job that follows will make them,
shown as a strip of a few frames over their maps and saved as a control video to download (and upload again
as a ready control video)."""
from __future__ import annotations


import numpy as np

from ..conditions.control_cache import ControlCache, control_maps, preview_strip, save_control_video
from ..conditions.mask_io import frames_hash
from ..controlnets import ControlSpec
from ..models import DEMO_NAME
from ..settings import ControlPreviewSettings
from .base import JobContext, prepare_trimmed_video, save_outputs

Settings = ControlPreviewSettings


prepare = prepare_trimmed_video


def run(settings: ControlPreviewSettings, inputs: dict, ctx: JobContext):
    from .generate import control_cache_dir

    frames = inputs["frames"]
    spec = ControlSpec(type=settings.type, detector=settings.detector)
    maps, note = control_maps(spec, frames, ControlCache(control_cache_dir(settings, ctx)),
                              demo=(settings.model or DEMO_NAME) == DEMO_NAME)
    ctx.check_cancel()
    idx = np.linspace(0, len(frames) - 1, min(settings.samples, len(frames))).round().astype(int)
    ctx.outputs.update(num_frames=len(frames), note=f"Control maps of all {len(frames)} frames: {note}.",
                       maps=maps, strip=preview_strip(frames, maps, settings.samples),
                       control_video=str(control_cache_dir(settings, ctx) / f"{settings.type}-{frames_hash(frames)[:16]}.mp4"))
    return maps[idx]


def save(frames, settings: ControlPreviewSettings, ctx: JobContext) -> dict:
    from PIL import Image

    maps, strip = ctx.outputs.pop("maps"), ctx.outputs.pop("strip")
    out = save_outputs(frames, settings, ctx.out_dir, fps=1.0, is_cancelled=ctx.is_cancelled)
    # beside the cached maps (outlives the light job's folder), for the studio to hand out
    out["control_video"] = str(save_control_video(maps, ctx.outputs.pop("control_video"), fps=settings.fps or 8.0))
    out["strip"] = out["control_video"][:-len(".mp4")] + "-strip.png"
    Image.fromarray(strip).save(out["strip"])
    out.update(ctx.outputs)
    return out


__all__ = ["Settings", "prepare", "run", "save"]
