"""Light kind: an object's masks drawn over a few sampled frames, made as the edit job will make them.

Runs in the worker like any job, so no mask model ever loads in the web process. The masks are computed over
the whole trimmed video, read exactly as the edit job reads it, and land in the same per-(video, prompt,
settings) cache, so the edit that follows reuses them. A mask that cannot be made (no masking models, object
not found) is a result too: the plain frames, ok=False and the reason."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..conditions.mask_io import write_mask_video
from ..conditions.masks import ObjectMasks, object_masks, overlay
from ..settings import MaskPreviewSettings
from .base import JobContext, prepare_trimmed_video, save_outputs

Settings = MaskPreviewSettings
MASK_VIDEO = "masks.mp4"


def make_masks(frames: np.ndarray, object_prompt: str, settings, ctx: JobContext, *, demo: bool) -> ObjectMasks:
    """object_masks for a job (edit or preview): cached under the studio's private cache, the mask video
    written into the job's folder and listed among its outputs (`mask_video`), the method's note noticed."""
    cache = Path(settings.cache_dir) / "masks" if settings.cache_dir else ctx.out_dir.parent / ".mask-cache"
    found = object_masks(frames, object_prompt, demo=demo, settings=settings.masks, cache_dir=cache)
    fps = getattr(settings, "fps", None) or 8.0
    ctx.outputs["mask_video"] = str(write_mask_video(found.soft, Path(ctx.out_dir) / MASK_VIDEO, fps=fps))
    ctx.notices.append(f"Object masks: {found.note}.")
    return found


prepare = prepare_trimmed_video


def run(settings: MaskPreviewSettings, inputs: dict, ctx: JobContext):
    frames = inputs["frames"]
    picks = sorted({round(i * (len(frames) - 1) / max(1, settings.samples - 1)) for i in range(settings.samples)})
    try:
        found = make_masks(frames, settings.object_prompt, settings, ctx,
                           demo=(settings.model or "demo") == "demo")
    except ValueError as err:
        ctx.outputs.update(method=None, note=str(err), ok=False)
        return frames[picks]
    note = f"Masks made by: {found.note}. Coverage {100 * found.masks.mean():.1f} % of the pixels."
    ctx.outputs.update(method=found.method, note=note, ok=True, num_frames=len(frames))
    return overlay(frames[picks], found.masks[picks])


def save(frames, settings: MaskPreviewSettings, ctx: JobContext) -> dict:
    out = save_outputs(frames, settings, ctx.out_dir, notices=ctx.notices, fps=1.0, is_cancelled=ctx.is_cancelled)
    out.update(ctx.outputs)
    return out
