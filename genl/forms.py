"""Settings objects from a tab's values (the dict of its named inputs): one builder per job tab.

values["prompt"] is the timeline as text (the tab turns its table into it: ui/timeline_rows.py timeline_prompt).

Beside genl/settings.py, which they fill; no Gradio and no tensors. Every user mistake becomes a ValueError
whose message the UI shows as it is.
"""
from __future__ import annotations

import random

from .conditions.mask_settings import MaskSettings
from .settings import CoDenoiseSettings, EditSettings, GenerateSettings


def seed_value(seed, randomize: bool) -> int:
    if randomize or seed is None or seed == "" or int(seed) < 0:
        return random.randint(0, 2**31 - 1)
    return int(seed)


def codenoise(clip_length, stride, weights, loop=False, schedule=None, fusion=None) -> CoDenoiseSettings:
    """schedule: the window schedule's name (genl/plan.py), fusion: where clips are fused ('output' or
    'motion'); None or empty keeps the settings' default."""
    extra = {"schedule": str(schedule)} if schedule else {}
    if fusion:
        extra["fusion"] = str(fusion)
    return CoDenoiseSettings(clip_length=int(clip_length), stride=int(stride), weights=str(weights), loop=bool(loop),
                             **extra)


def _common(values: dict) -> dict:
    num_frames = int(values["num_frames"])
    fps = float(values["fps"])
    if fps <= 0:
        raise ValueError(f"Frames per second must be above 0 (got {fps:g}).")
    return dict(negative_prompt=str(values.get("negative_prompt") or ""), num_frames=num_frames,
                width=int(values["width"]), height=int(values["height"]), fps=fps, steps=int(values["steps"]),
                guidance=float(values["guidance"]), scheduler=str(values["scheduler"]),
                seed=seed_value(values.get("seed"), bool(values.get("randomize"))),
                model=str(values.get("model") or "demo"),
                codenoise=codenoise(values["clip_length"], values["stride"], values["weights"],
                                    values.get("loop", False), values.get("schedule"), values.get("fusion")))


def generate_settings(values: dict) -> GenerateSettings:
    """Settings for a text -> video job from the tab's values (the timeline text and the Advanced fields)."""
    pipeline = str(values.get("pipeline") or GenerateSettings.pipeline)
    if pipeline != "animatediff":  # the fusion field speaks of video models; an image model fuses outputs
        values = {**values, "fusion": None}
    share = values.get("noise_share")
    share = 0.0 if share in (None, "") or pipeline != "animatediff" else float(share)
    return GenerateSettings(prompt=str(values["prompt"]), pipeline=pipeline, noise_share=share, **_common(values))


def edit_settings(values: dict) -> EditSettings:
    """Settings for an edit job. The target timeline is checked once the trimmed video's length is known."""
    if not values.get("video"):
        raise ValueError("No video given: upload the video to edit.")
    from genl.video_io import probe_video

    probe_video(values["video"])  # a file that is not a video fails here, in plain words, before queueing
    common = _common(values)
    start = float(values.get("start") or 0.0)
    end = values.get("end")
    end = float(end) if end not in (None, "", 0, 0.0) else None
    if start < 0 or (end is not None and end <= start):
        raise ValueError("Trim: the end must come after the start (and the start cannot be negative).")
    return EditSettings(prompt=str(values["prompt"]), video=str(values["video"]), start=start, end=end,
                        source_prompt=str(values.get("source_prompt") or ""), **common)


def mask_settings(values: dict) -> MaskSettings:
    """How the object becomes masks, from the Edit-anything tab's values (missing ones keep MaskSettings'
    defaults); an uploaded mask video is used as it is (method 'upload')."""
    d = MaskSettings()

    def get(name, default, key=None):
        v = values.get(key or name)
        return type(default)(default if v in (None, "") else v)

    upload = str(values.get("mask_video") or "")
    return MaskSettings(method="upload" if upload else get("method", d.method, "mask_method"),
                        box_threshold=get("box_threshold", d.box_threshold),
                        text_threshold=get("text_threshold", d.text_threshold),
                        instance=get("instance", d.instance), index=get("index", d.index, "instance_index"),
                        keyframe_every=get("keyframe_every", d.keyframe_every), dilate=get("dilate", d.dilate),
                        feather=get("feather", d.feather), upload=upload).validate()


def masked_edit_settings(values: dict) -> EditSettings:
    """An edit that changes only the object named in values['mask_object'] (or inside an uploaded mask
    video), and may keep the source's edges."""
    settings = edit_settings(values)
    settings.mask_object = str(values.get("mask_object") or "").strip()
    settings.masks = mask_settings(values)
    if not settings.mask_object and settings.masks.method != "upload":
        raise ValueError("Describe the object to edit (for example 'the red circle'), or upload a mask video.")
    settings.strength = float(values.get("strength") or 1.0)
    if values.get("keep_edges"):
        settings.control = "edges"
        settings.controlnet = str(values.get("controlnet") or "").strip()
        settings.control_scale = float(values.get("control_scale", 1.0))
    return settings


def edge_control_settings(values: dict) -> GenerateSettings:
    """Text -> video that follows the edges of values['control_video'] (tuning-free image model + ControlNet)."""
    if not values.get("control_video"):
        raise ValueError("No reference video given: upload the video whose edges to follow.")
    from genl.video_io import probe_video

    probe_video(values["control_video"])
    settings = generate_settings(dict(values, pipeline="tuning_free"))
    settings.control = "edges"
    settings.control_video = str(values["control_video"])
    settings.controlnet = str(values.get("controlnet") or "").strip()
    settings.control_scale = float(values.get("control_scale", 1.0))
    return settings


FIRST_CONTROL = dict(type="control_type", model="controlnet", strength="control_scale", start="control_start",
                     end="control_end", video="control_maps", detector="detector")
SECOND_CONTROL = {k: "second_" + k for k in FIRST_CONTROL}
THIRD_CONTROL = {k: "third_" + k for k in FIRST_CONTROL}
MORE_CONTROLS = (SECOND_CONTROL, THIRD_CONTROL)  # the tab's optional rows, each used when its type is set


def control_spec(values: dict, names: dict = FIRST_CONTROL) -> dict:
    """One control's dict (ControlSpec fields) from the tab's values; `names` maps each field to its input."""
    def get(field, default):
        v = values.get(names[field])
        return default if v is None or v == "" else v

    video = get("video", "")
    return {"type": str(get("type", "pose")), "model": str(get("model", "")).strip(),
            "strength": float(get("strength", 1.0)), "start": float(get("start", 0.0)),
            "end": float(get("end", 1.0)), "video": str(getattr(video, "path", video) or ""),
            "detector": str(get("detector", ""))}


def pose_control_settings(values: dict) -> GenerateSettings:
    """Text -> video following the pose / edges / depth of values['control_video'] (or ready control videos),
    with up to two more controls (values prefixed 'second_' / 'third_', each used when its type is set)."""
    controls = [control_spec(values)] + [control_spec(values, names) for names in MORE_CONTROLS
                                         if values.get(names["type"]) not in (None, "", "none")]
    if not values.get("control_video") and any(not c["video"] for c in controls):
        raise ValueError("No reference video given: upload the video whose pose, edges or depth to follow "
                         "(or a ready control video).")
    if values.get("control_video"):
        from genl.video_io import probe_video

        probe_video(values["control_video"])
    settings = generate_settings(dict(values, pipeline="tuning_free"))
    settings.control_video = str(values.get("control_video") or "")
    settings.controls = controls
    return settings
