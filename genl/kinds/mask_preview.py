"""Light kind: an object's masks drawn over a few sampled frames, made as the edit job will make them.

Runs in the worker like any job, so no mask model ever loads in the web process. The masks are computed over
the whole trimmed video, decoded chunk by chunk exactly as the edit job reads it (never held whole), and land in
the same per-(video, prompt, settings) cache, so the edit that follows reuses them. A mask that cannot be made (no masking models, object
not found) is a result too: the plain frames, ok=False and the reason."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..conditions.frames import Frames, VideoFrames, frame_chunks, frames_shape, take
from ..conditions.mask_io import write_mask_video
from ..conditions.masks import ObjectMasks, object_masks, overlay
from ..settings import MaskPreviewSettings
from .base import JobContext, save_outputs

Settings = MaskPreviewSettings
MASK_VIDEO = "masks.mp4"


def make_masks(frames: Frames, object_prompt: str, settings, ctx: JobContext, *, demo: bool) -> ObjectMasks:
    """object_masks for a job (edit or preview): cached under the studio's private cache, the mask video
    written into the job's folder and listed among its outputs (`mask_video`), the method's note noticed."""
    cache = Path(settings.cache_dir) / "masks" if settings.cache_dir else ctx.out_dir.parent / ".mask-cache"
    found = object_masks(frames, object_prompt, demo=demo, settings=settings.masks, cache_dir=cache)
    fps = getattr(settings, "fps", None) or 8.0
    ctx.outputs["mask_video"] = str(write_mask_video(found.masks, Path(ctx.out_dir) / MASK_VIDEO, fps=fps,
                                                     feather=found.feather))
    ctx.notices.append(f"Object masks: {found.note}.")
    return found


def prepare(settings: MaskPreviewSettings, ctx: JobContext):
    """The trimmed video as the edit job will read it, as a VideoFrames decoded on demand (one frame read here:
    an empty trim is refused before the job runs)."""
    settings.validate()
    frames = VideoFrames(settings.video, fps=settings.fps or None, start=float(settings.start or 0),
                         end=settings.end or None, max_frames=settings.max_frames, size=settings.size)
    try:
        next(iter(frame_chunks(frames, 1)))
    except StopIteration:
        raise ValueError("The trimmed part of the video has no frames: check the start and end times.") from None
    return settings, {"frames": frames}


def _picks(count: int, samples: int) -> list[int]:
    return sorted({round(i * (count - 1) / max(1, samples - 1)) for i in range(samples)})


def run(settings: MaskPreviewSettings, inputs: dict, ctx: JobContext):
    frames = inputs["frames"]
    try:
        found = make_masks(frames, settings.object_prompt, settings, ctx,
                           demo=(settings.model or "demo") == "demo")
    except ValueError as err:
        ctx.outputs.update(method=None, note=str(err), ok=False)
        return take(frames, _picks(frames_shape(frames)[0], settings.samples))
    picks = _picks(len(found.masks), settings.samples)
    note = f"Masks made by: {found.note}. Coverage {100 * found.masks.mean():.1f} % of the pixels."
    ctx.outputs.update(method=found.method, note=note, ok=True, num_frames=len(found.masks))
    return overlay(take(frames, picks), found.masks[picks])


def save(frames, settings: MaskPreviewSettings, ctx: JobContext) -> dict:
    out = save_outputs(frames, settings, ctx.out_dir, notices=ctx.notices, fps=1.0, is_cancelled=ctx.is_cancelled)
    out.update(ctx.outputs)
    return out
