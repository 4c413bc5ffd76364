"""One call per job: settings in, files out. The CLI and the job worker both go through `run_job`.

A job writes into its own folder: the mp4, the exact settings as JSON (so any result can be reproduced),
a first-frame thumbnail and the frames as PNGs. Files are complete before `run_job` returns.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .codenoise import make_windows
from .conditions.edges import edge_map
from .conditions.masks import object_masks
from .models import DEMO_NAME, DEMO_NOTICE, ModelManager, ModelNotAvailable, demo_available
from .sampling import Cancelled, make_scheduler  # Cancelled is re-exported for the job system
from .settings import EditSettings, GenerateSettings
from .timeline import Timeline, load_timeline

# Measured UNet frame-evaluations per second at 512x512 (bench/results): used to estimate run time.
RATES = {("cuda", "sd"): 300.0, ("cuda", "animatediff"): 180.0, ("cpu", "sd"): 0.6, ("cpu", "animatediff"): 0.4}
DEMO_RATE_FACTOR = 60.0  # the demo model is ~60x cheaper per frame than SD-1.5 at the same latent size


def _progress_adapter(progress: Optional[Callable[[dict], None]]):
    if progress is None:
        return None
    started = time.monotonic()

    def callback(stage, step, total, x0):
        progress({"stage": stage, "step": step, "total": total, "x0": x0,
                  "elapsed": time.monotonic() - started})

    return callback


def run_job(settings, out_dir, *, progress=None, is_cancelled=None, models: Optional[ModelManager] = None,
            fallback_to_demo: bool = True, save_frames: bool = True) -> dict:
    """Run a GenerateSettings or EditSettings job; returns paths of what it wrote plus notices."""
    out_dir = Path(out_dir)
    notices = [f"Made with the {DEMO_NOTICE}."] if settings.model == DEMO_NAME else []
    if not isinstance(settings, EditSettings):  # edits validate once the video's length is known
        settings.validate()
    models = models or ModelManager()
    callback = _progress_adapter(progress)
    cn = settings.codenoise

    controlnet = (settings.controlnet or (DEMO_NAME if settings.model == DEMO_NAME else "")) if settings.control else ""
    if settings.control and not controlnet:
        raise ValueError("Edge control needs a ControlNet model: set one (e.g. an SD-1.5 canny ControlNet).")

    def pipeline_for(name):
        try:
            return models.get(name, settings.model, device=settings.device, precision=settings.precision,
                              motion_adapter=getattr(settings, "motion_adapter", ""), controlnet=controlnet)
        except ModelNotAvailable as err:
            if not fallback_to_demo or settings.model == DEMO_NAME or not demo_available():
                raise
            notices.append(f"{err} Using the {DEMO_NOTICE} instead.")  # also marks masks as demo-world
            return models.get(name, DEMO_NAME, device=settings.device, precision=settings.precision,
                              controlnet=DEMO_NAME if controlnet else "")

    if isinstance(settings, EditSettings):
        from .inversion import InversionCache
        from .video_io import read_video, video_hash

        frames, fps = read_video(settings.video, fps=settings.fps, start=settings.start, end=settings.end,
                                 max_frames=settings.max_frames, size=(settings.width, settings.height))
        settings = dataclasses.replace(settings, num_frames=len(frames))
        settings.validate()
        pipe = pipeline_for("edit")
        cache = InversionCache(settings.cache_dir or out_dir.parent / ".inversion-cache")
        masks = None
        if settings.mask_object:
            found = object_masks(frames, settings.mask_object, settings.mask_method,
                                 demo=any(DEMO_NOTICE in n for n in notices))
            masks = found.masks
            notices.append(f"Object masks: {found.note}.")
        result = pipe(frames, load_timeline(settings.source_prompt).validate(len(frames)), settings.timeline(),
                      num_inference_steps=settings.steps, guidance_scale=settings.guidance,
                      clip_length=cn.clip_length, stride=cn.stride, weights=cn.weights,
                      attention=settings.attention, strength=settings.strength, smoothness=settings.smoothness,
                      scheduler=settings.scheduler, windows_per_call=cn.windows_per_call, masks=masks,
                      control_frames=edge_map(frames) if settings.control else None,
                      control_scale=settings.control_scale,
                      interpolation=cn.interpolation, cache=cache,
                      cache_id={"video": video_hash(settings.video), "model": settings.model},
                      callback=callback, is_cancelled=is_cancelled)
    else:
        pipe = pipeline_for(settings.pipeline)
        _set_scheduler(pipe, settings.scheduler)
        common = dict(num_frames=settings.num_frames, height=settings.height, width=settings.width,
                      num_inference_steps=settings.steps, guidance_scale=settings.guidance,
                      clip_length=cn.clip_length, stride=cn.stride, weights=cn.weights, loop=cn.loop,
                      seed=settings.seed, windows_per_call=cn.windows_per_call, interpolation=cn.interpolation,
                      callback=callback, is_cancelled=is_cancelled)
        if settings.pipeline == "animatediff":
            result = pipe(settings.timeline(), **common)
        else:
            control = None
            if settings.control:
                from .video_io import read_video

                ref, _ = read_video(settings.control_video, fps=settings.fps, max_frames=settings.num_frames,
                                    size=(settings.width, settings.height))
                if len(ref) < settings.num_frames:
                    raise ValueError(f"The reference video has {len(ref)} frames at {settings.fps:g} fps; "
                                     f"the video needs {settings.num_frames}. Make it shorter or lower the fps.")
                control = edge_map(ref)
            result = pipe(settings.timeline(), attention=settings.attention, motion=tuple(settings.motion),
                          transition_frames=cn.transition_frames, control_frames=control,
                          control_scale=settings.control_scale, **common)
    return save_outputs(result.frames, settings, out_dir, notices=notices, save_frames=save_frames)


def _set_scheduler(pipe, name: str) -> None:
    pipe.scheduler = make_scheduler(name, pipe.scheduler.config)


def save_outputs(frames: np.ndarray, settings, out_dir: Path, *, notices=(), save_frames: bool = True) -> dict:
    """mp4 + settings JSON + thumbnail (+ PNG frames), each written completely before we return."""
    from PIL import Image

    from .video_io import save_frames_png, write_mp4

    out_dir.mkdir(parents=True, exist_ok=True)
    video = write_mp4(frames, out_dir / "video.mp4", fps=settings.fps)
    meta = settings.to_dict()
    meta["notices"] = list(notices)
    settings_path = out_dir / "settings.json"
    tmp = settings_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, indent=2, default=str))
    tmp.replace(settings_path)
    thumb = out_dir / "thumbnail.png"
    Image.fromarray(frames[0]).save(thumb)
    frames_dir = None
    if save_frames:
        frames_dir = out_dir / "frames"
        save_frames_png(frames, frames_dir)
    return {"video": str(video), "settings": str(settings_path), "thumbnail": str(thumb),
            "frames_dir": str(frames_dir) if frames_dir else None, "notices": list(notices),
            "num_frames": int(len(frames))}


def estimate(settings) -> dict:
    """Rough time and GPU-memory estimate before running: frame evaluations over the measured rate."""
    import torch

    cn = settings.codenoise
    n = settings.num_frames
    windows = make_windows(n, cn.clip_length, cn.stride, loop=cn.loop)
    cfg = 2 if settings.guidance > 1 else 1
    evals = settings.steps * len(windows) * cn.clip_length * cfg
    if isinstance(settings, EditSettings):
        evals += settings.steps * settings.strength * len(windows) * cn.clip_length
    family = "animatediff" if getattr(settings, "pipeline", "") == "animatediff" else "sd"
    device = "cuda" if (settings.device in ("auto", "cuda") and torch.cuda.is_available()) else "cpu"
    rate = RATES[(device, family)] * (512 * 512) / (settings.width * settings.height)
    if settings.model == DEMO_NAME:
        rate *= DEMO_RATE_FACTOR
    memory_gb = (3.5 if family == "sd" else 5.0) + 0.09 * cn.clip_length * cfg * settings.width * settings.height / 512**2
    return {"frame_evals": int(evals), "windows": len(windows), "seconds": evals / rate,
            "memory_gb": round(memory_gb, 1), "device": device}


def parse_timeline_or_error(text: str, num_frames: int) -> Timeline:
    """For the UI: validate a timeline and return it, raising ValueError with the user's message."""
    return load_timeline(text).validate(num_frames)


__all__ = ["run_job", "estimate", "save_outputs", "Cancelled", "GenerateSettings", "EditSettings"]
