"""Light kind: an object's masks drawn over a few sampled frames, made as the edit job will make them.

Runs in the worker like any job, so no mask model ever loads in the web process. A mask that cannot be
made (no masking models, object not found) is a result too: the plain frames, ok=False and the reason."""
from __future__ import annotations

from ..conditions.masks import object_masks, overlay
from ..settings import MaskPreviewSettings
from .base import JobContext, sample_frames, save_outputs

Settings = MaskPreviewSettings


def prepare(settings: MaskPreviewSettings, ctx: JobContext):
    settings.validate()
    frames, _ = sample_frames(settings)
    return settings, {"frames": frames}


def run(settings: MaskPreviewSettings, inputs: dict, ctx: JobContext):
    frames = inputs["frames"]
    try:
        found = object_masks(frames, settings.object_prompt, settings.mask_method,
                             demo=(settings.model or "demo") == "demo")
    except ValueError as err:
        ctx.outputs.update(method=None, note=str(err), ok=False)
        return frames
    note = f"Masks made by: {found.note}. Coverage {100 * found.masks.mean():.1f} % of the pixels."
    ctx.outputs.update(method=found.method, note=note, ok=True)
    return overlay(frames, found.masks)


def save(frames, settings: MaskPreviewSettings, ctx: JobContext) -> dict:
    out = save_outputs(frames, settings, ctx.out_dir, fps=1.0, is_cancelled=ctx.is_cancelled)
    out.update(ctx.outputs)
    return out
