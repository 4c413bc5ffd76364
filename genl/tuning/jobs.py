"""One call per tuning job, like genl.api.run_job: settings in, a tuning folder (and a video) out.

`run_tune_job` is what the "tune" job kind (genl/kinds/tune.py) and `python -m genl tune` call;
`prepare_tuned_edit`/`run_tuned_edit` are the edit kind's steps when EditSettings.tuned names a tuning. Components come from the ModelManager's image-model pipeline;
the UNet is copied before tuning so the cached one stays the plain image model.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Callable, Optional

from ..models import ModelManager
from ..timeline import load_timeline
from .settings import DEFAULT_STORE, TuneSettings
from .store import TuningStore
from .train import tune


def image_components(models: ModelManager, model: str, device: str = "auto", precision: str = "auto") -> dict:
    pipe = models.get("tuning_free", model, device=device, precision=precision)
    return {k: getattr(pipe, k) for k in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}


def source_frames(settings: TuneSettings):
    """The (trimmed, resized) frames tuning learns from and their validated source timeline (c^i)."""
    from ..video_io import read_video

    frames, _ = read_video(settings.video, fps=settings.fps, start=float(settings.start or 0), end=settings.end,
                           max_frames=settings.max_frames, size=(settings.width, settings.height))
    if len(frames) < settings.clip_length:
        raise ValueError(f"The (trimmed) video has {len(frames)} frames at {settings.fps:g} fps, fewer than one "
                         f"clip of {settings.clip_length}: use a longer part of the video or a shorter clip length.")
    return frames, load_timeline(settings.prompt).validate(len(frames))


def run_tune_job(settings: TuneSettings, store_dir=None, *, progress: Optional[Callable[[dict], None]] = None,
                 is_cancelled=None, models: Optional[ModelManager] = None, frames=None, timeline=None) -> dict:
    """Tune (or resume tuning) on settings.video; returns the tuning's meta with its folder.

    The store folder is keyed by the video's content and the weight settings, so the same job again resumes
    from its last checkpoint (or reuses a finished tuning)."""
    from ..video_io import video_hash

    settings.validate()
    models = models or ModelManager()
    if frames is None:
        frames, timeline = source_frames(settings)
    comps = image_components(models, settings.model, settings.device, settings.precision)
    comps["unet"] = copy.deepcopy(comps["unet"])
    vhash = video_hash(settings.video)
    folder = TuningStore(store_dir or settings.store_dir or DEFAULT_STORE).folder(vhash, settings)
    return tune(comps, frames, timeline, settings, folder, meta={"model": settings.model, "video_hash": vhash},
                progress=progress, is_cancelled=is_cancelled)


def prepare_tuned_edit(settings, ctx):
    """The edit kind's prepare for EditSettings with `tuned`: the tuning decides the model, size and frame
    rate; the start is the video's inversion through the tuned model, or random noise (`from_noise`, the
    paper's Fig. 4 test, as long as the tuned video)."""
    from ..timeline import Timeline
    from ..video_io import read_video
    from .store import resolve_tuning
    from .weights import read_meta

    if settings.mask_object or settings.control:
        raise ValueError("Object masks and edge control do not work with a tuned model yet: turn them off, "
                         "or edit without the tuning.")
    folder = resolve_tuning(settings.tuned)
    meta = read_meta(folder)
    tuned = meta["settings"]
    if settings.model != tuned["model"]:
        ctx.notices.append(f"The tuning was made with the model '{tuned['model']}', so the edit uses it.")
    settings = dataclasses.replace(settings, tuned=str(folder), model=tuned["model"], width=tuned["width"],
                                   height=tuned["height"], fps=tuned["fps"], num_frames=meta["num_frames"])
    frames = None
    if not settings.from_noise:
        frames, _ = read_video(settings.video, fps=settings.fps, start=settings.start, end=settings.end,
                               max_frames=settings.max_frames, size=(settings.width, settings.height))
        settings = dataclasses.replace(settings, num_frames=len(frames))
    target = settings.validate()
    source = None
    if frames is not None:
        if (settings.source_prompt or "").strip():
            source = load_timeline(settings.source_prompt).validate(len(frames))
        elif len(frames) != meta["num_frames"]:
            raise ValueError(f"This part of the video has {len(frames)} frames but the tuning learned "
                             f"{meta['num_frames']}: say what the video shows (source prompt), or trim it as "
                             "it was trimmed for tuning.")
        else:
            source = Timeline.from_json(meta["timeline"])
    start = "random noise" if frames is None else "the video's inversion"
    ids = "with" if settings.use_identifiers else "without"
    ctx.notices.append(f"Tuned model '{folder.name}', {ids} clip identifiers, starting from {start}.")
    return settings, {"frames": frames, "target": target, "source": source}


def run_tuned_edit(settings, inputs: dict, ctx):
    """The edit kind's run with `tuned`: LongTunedPipeline on the tuning (frames out)."""
    from ..pipelines.tuned import LongTunedPipeline
    from ..sampling import make_scheduler

    models = ctx.models or ModelManager()
    comps = image_components(models, settings.model, settings.device, settings.precision)
    pipe = LongTunedPipeline.from_tuning(settings.tuned, comps)
    pipe.scheduler = make_scheduler(settings.scheduler, pipe.scheduler.config)
    return pipe(inputs["target"], num_frames=settings.num_frames, height=settings.height, width=settings.width,
                num_inference_steps=settings.steps, guidance_scale=settings.guidance, codenoise=settings.codenoise,
                use_identifiers=settings.use_identifiers, seed=settings.seed, source_frames=inputs["frames"],
                source=inputs["source"], callback=ctx.progress, is_cancelled=ctx.is_cancelled).frames
