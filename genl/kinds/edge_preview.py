"""Light kind: Canny edge maps of a few sampled frames of a reference video, what the ControlNet follows."""
from __future__ import annotations

from ..conditions.edges import edge_map
from ..settings import EdgePreviewSettings
from .base import JobContext, sample_frames, save_outputs

Settings = EdgePreviewSettings
POSE_AND_DEPTH = ("Pose (OpenPose) and depth (Depth Anything) maps come from the control preview "
                  "(`control_preview`), which also makes edges and a downloadable control video.")


def prepare(settings: EdgePreviewSettings, ctx: JobContext):
    settings.validate()
    frames, total = sample_frames(settings)
    return settings, {"frames": frames, "num_frames": total}


def run(settings: EdgePreviewSettings, inputs: dict, ctx: JobContext):
    frames, total = inputs["frames"], inputs["num_frames"]
    ctx.outputs.update(num_frames=total,
                       note=f"Edges of {len(frames)} of the {total} frames the video will follow. {POSE_AND_DEPTH}")
    return edge_map(frames)


def save(frames, settings: EdgePreviewSettings, ctx: JobContext) -> dict:
    out = save_outputs(frames, settings, ctx.out_dir, fps=1.0, is_cancelled=ctx.is_cancelled)
    out.update(ctx.outputs)
    return out
