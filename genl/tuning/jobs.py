"""One call per tuning job, like genl.api.run_job: settings in, a tuning folder (and a video) out.

`run_tune_job` is what the job worker and `python -m genl tune` call; `run_tuned_edit` is what
`python -m genl edit --tuned FOLDER` calls. Components come from the ModelManager's image-model pipeline;
the UNet is copied before tuning so the cached one stays the plain image model.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable, Optional

from ..models import ModelManager
from ..timeline import Timeline, load_timeline
from .settings import TuneSettings
from .store import TuningStore
from .train import tune


def image_components(models: ModelManager, model: str, device: str = "auto", precision: str = "auto") -> dict:
    pipe = models.get("tuning_free", model, device=device, precision=precision)
    return {k: getattr(pipe, k) for k in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}


def run_tune_job(settings: TuneSettings, store_dir, *, progress: Optional[Callable[[dict], None]] = None,
                 is_cancelled=None, models: Optional[ModelManager] = None) -> dict:
    """Tune (or resume tuning) on settings.video; returns the tuning's meta with its folder."""
    from ..video_io import read_video, video_hash

    settings.validate()
    models = models or ModelManager()
    frames, _ = read_video(settings.video, fps=settings.fps, max_frames=settings.max_frames,
                           size=(settings.width, settings.height))
    timeline = load_timeline(settings.prompt).validate(len(frames))
    comps = image_components(models, settings.model, settings.device, settings.precision)
    comps["unet"] = copy.deepcopy(comps["unet"])
    vhash = video_hash(settings.video)
    folder = TuningStore(store_dir).folder(vhash, settings)
    return tune(comps, frames, timeline, settings, folder, meta={"model": settings.model, "video_hash": vhash},
                progress=progress, is_cancelled=is_cancelled)


def run_tuned_edit(tuning, prompt: str, out_dir, *, video: str = "", num_frames: Optional[int] = None,
                   steps: int = 50, guidance: float = 7.5, seed: int = 0, use_identifiers: bool = True,
                   codenoise=None, device: str = "auto", precision: str = "auto", fps: float = 8.0,
                   callback=None, is_cancelled=None, models: Optional[ModelManager] = None) -> dict:
    """Sample the edited timeline `prompt` from a tuning: from random noise, or from `video`'s inversion."""
    from ..api import save_outputs
    from ..pipelines.tuned import LongTunedPipeline
    from ..settings import GenerateSettings
    from ..tuning.weights import read_meta

    meta = read_meta(tuning)
    s = meta["settings"]
    models = models or ModelManager()
    pipe = LongTunedPipeline.from_tuning(tuning, image_components(models, s["model"], device, precision))
    frames = None
    if video:
        from ..video_io import read_video

        frames, _ = read_video(video, fps=s["fps"], max_frames=s["max_frames"], size=(s["width"], s["height"]))
    n = len(frames) if frames is not None else (num_frames or meta["num_frames"])
    result = pipe(load_timeline(prompt).validate(n), num_frames=n, height=s["height"], width=s["width"],
                  num_inference_steps=steps, guidance_scale=guidance, codenoise=codenoise,
                  use_identifiers=use_identifiers, seed=seed, source_frames=frames, callback=callback,
                  is_cancelled=is_cancelled)
    record = GenerateSettings(prompt=prompt, num_frames=n, width=s["width"], height=s["height"], fps=fps,
                              steps=steps, guidance=guidance, seed=seed, model=s["model"], pipeline="tuning_free")
    notes = [f"Tuned weights: {tuning} ({'with' if use_identifiers else 'without'} clip identifiers)."]
    return save_outputs(result.frames, record, Path(out_dir), notices=notes)
