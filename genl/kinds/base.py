"""What every job kind shares: the run context, loading a pipeline (with the demo fallback) and saving.

A kind module has one shape (genl/kinds/__init__.py): `Settings`, `prepare(settings, ctx)` -> (settings,
inputs), `run(settings, inputs, ctx)` -> frames, `save(frames, settings, ctx)` -> outputs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..models import DEMO_NAME, DEMO_NOTICE, ModelManager, ModelNotAvailable, demo_available
from ..progress import IsCancelled, Progress, check_cancel


@dataclass
class JobContext:
    """Where a job writes and how it talks back; `notices` and `outputs` collect what the result reports."""

    out_dir: Path
    models: Optional[ModelManager] = None
    progress: Optional[Progress] = None
    is_cancelled: Optional[IsCancelled] = None
    fallback_to_demo: bool = True
    save_frames: bool = True
    notices: list = field(default_factory=list)
    outputs: dict = field(default_factory=dict)  # extra result fields a kind reports (a preview's note, ...)

    def check_cancel(self) -> None:
        check_cancel(self.is_cancelled)

    @property
    def demo_world(self) -> bool:
        """True once the demo model makes this result (chosen, or the fallback), so conditions such as
        masks may use the demo world's stand-ins."""
        return any(DEMO_NOTICE in n for n in self.notices)


def demo_notice(settings) -> list:
    return [f"Made with the {DEMO_NOTICE}."] if settings.model == DEMO_NAME else []


def load_pipeline(ctx: JobContext, settings, name: str, controlnet: str = ""):
    """The cached pipeline `name` for the settings' model; the demo model (with a notice) when that model
    cannot load and the job allows the fallback."""
    models = ctx.models or ModelManager()
    try:
        return models.get(name, settings.model, device=settings.device, precision=settings.precision,
                          motion_adapter=getattr(settings, "motion_adapter", ""), controlnet=controlnet)
    except ModelNotAvailable as err:
        if not ctx.fallback_to_demo or settings.model == DEMO_NAME or not demo_available():
            raise
        ctx.notices.append(f"{err} Using the {DEMO_NOTICE} instead.")
        return models.get(name, DEMO_NAME, device=settings.device, precision=settings.precision,
                          controlnet=DEMO_NAME if controlnet else "")


def save_outputs(frames: np.ndarray, settings, out_dir: Path, *, notices=(), save_frames: bool = True,
                 fps: Optional[float] = None, is_cancelled: Optional[IsCancelled] = None) -> dict:
    """mp4 + settings JSON + thumbnail (+ PNG frames), each written completely before we return."""
    from PIL import Image

    from ..video_io import save_frames_png, write_mp4

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_cancel(is_cancelled)
    video = write_mp4(frames, out_dir / "video.mp4", fps=fps or settings.fps)
    meta = public_settings(settings.to_dict())
    meta["notices"] = list(notices)
    settings_path = out_dir / "settings.json"
    tmp = settings_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, indent=2, default=str))
    tmp.replace(settings_path)
    thumb = out_dir / "thumbnail.png"
    Image.fromarray(frames[0]).save(thumb)
    frames_dir = None
    if save_frames:
        check_cancel(is_cancelled)
        frames_dir = out_dir / "frames"
        save_frames_png(frames, frames_dir)
    return {"video": str(video), "settings": str(settings_path), "thumbnail": str(thumb),
            "frames_dir": str(frames_dir) if frames_dir else None, "notices": list(notices),
            "num_frames": int(len(frames))}


PATH_SETTINGS = ("video", "control_video", "cache_dir", "store_dir", "tuned")  # plus masks.upload, controls[].video


def public_settings(meta: dict) -> dict:
    """Settings as written into the served results folder: each file or folder setting reduced to its name, so
    settings.json does not show where the server keeps uploads, caches and tunings (the job store keeps the
    full settings for re-runs)."""
    def name(path):
        return Path(str(path)).name if path else path

    meta = json.loads(json.dumps(meta, default=str))
    for key in PATH_SETTINGS:
        if meta.get(key):
            meta[key] = name(meta[key])
    if isinstance(meta.get("masks"), dict) and meta["masks"].get("upload"):
        meta["masks"]["upload"] = name(meta["masks"]["upload"])
    for control in meta.get("controls") or ():
        if isinstance(control, dict) and control.get("video"):
            control["video"] = name(control["video"])
    return meta


def save(frames: np.ndarray, settings, ctx: JobContext) -> dict:
    """The usual save step of a kind: the files plus the kind's extra outputs."""
    out = save_outputs(frames, settings, ctx.out_dir, notices=ctx.notices, save_frames=ctx.save_frames,
                       is_cancelled=ctx.is_cancelled)
    out.update(ctx.outputs)
    return out


def sample_frames(settings, *, samples: Optional[int] = None) -> tuple[np.ndarray, int]:
    """`samples` evenly spaced frames of the (trimmed) video at the settings' size, and its frame count."""
    from ..video_io import read_video

    frames, _ = read_video(settings.video, fps=settings.fps or None, start=float(settings.start or 0),
                           end=settings.end or None, max_frames=settings.max_frames, size=settings.size)
    if len(frames) == 0:
        raise ValueError("The trimmed part of the video has no frames: check the start and end times.")
    count = samples or settings.samples
    picks = sorted({round(i * (len(frames) - 1) / max(1, count - 1)) for i in range(count)})
    return frames[picks], len(frames)


def prepare_trimmed_video(settings, ctx: JobContext):
    """A preview kind's `prepare`: the whole trimmed video, read exactly as the job that follows reads it, so
    what the preview computes (masks, control maps) is cached under the same key."""
    from ..video_io import read_video

    settings.validate()
    frames, _ = read_video(settings.video, fps=settings.fps or None, start=float(settings.start or 0),
                           end=settings.end or None, max_frames=settings.max_frames, size=settings.size)
    if len(frames) == 0:
        raise ValueError("The trimmed part of the video has no frames: check the start and end times.")
    return settings, {"frames": frames}

