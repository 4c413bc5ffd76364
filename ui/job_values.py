"""A job's stored settings back into a tab's fields: the reverse of genl/forms.py, for "Load these settings".

Pure (no Gradio, no tensors): `job_values(settings)` takes a job's settings dict (JobSpec.settings) and gives
the tab that makes such jobs and {input name: value} under the names forms.py reads, so the tab's builder
makes the same settings again (the round trip tests/test_job_values.py checks). The timeline comes back as
rows in frames, the unit its stored ranges are written in.
"""
from __future__ import annotations

import json

from genl.conditions.mask_settings import MaskSettings
from genl.forms import FIRST_CONTROL, MORE_CONTROLS
from genl.settings import settings_from_dict
from genl.timeline import load_timeline

from .timeline_rows import FRAMES

TEXT, EDIT, MASKS, POSE, TUNE = "text", "edit", "masks", "pose", "tune"  # the tabs' ids in app.py
CONTROL_ROWS = (FIRST_CONTROL, *MORE_CONTROLS)  # the pose tab's control rows, in order
FILE_FIELDS = ("video", "control_video", "mask_video", *(row["video"] for row in CONTROL_ROWS))


def tab_for(settings: dict) -> str:
    """The tab that makes jobs like this one."""
    kind = settings.get("kind")
    if kind == "tune" or (kind == "edit" and settings.get("tuned")):
        return TUNE
    if kind == "edit":
        masks = settings.get("masks") or {}
        masked = str(settings.get("mask_object") or "").strip() or masks.get("method") == "upload"
        return MASKS if masked else EDIT
    if kind == "generate":
        return POSE if settings.get("controls") or settings.get("control") else TEXT
    raise ValueError(f"This job is a {kind or 'unknown'} preview, not a video: it has no settings to load into a "
                     "tab. Pick a text-to-video, edit, control or tuning job.")


def timeline_rows(prompt: str, num_frames: int) -> tuple[list[list], str]:
    """(rows in frames, note) from the stored timeline text; keyframes become the segments between them."""
    tl = load_timeline(prompt)
    last = max(int(num_frames) - 1, 0)
    if tl.keyframes:
        keys = sorted(tl.keyframes.items())
        ends = [k - 1 for k, _ in keys[1:]] + [last]
        rows = [[k, end, p, n] for (k, (p, n)), end in zip(keys, ends)]
        return rows, ("The job's timeline used keyframes (prompts that blend); the table shows them as "
                      "segments from one keyframe to the next.")
    return [[s.start, last if s.end < 0 else s.end, s.prompt, s.negative] for s in tl.segments], ""


def _common(s: dict) -> dict:
    cn = s.get("codenoise") or {}
    return dict(num_frames=s["num_frames"], fps=s["fps"], width=s["width"], height=s["height"], model=s["model"],
                seed=s["seed"], randomize=False, steps=s["steps"], guidance=s["guidance"], scheduler=s["scheduler"],
                clip_length=cn.get("clip_length"), stride=cn.get("stride"), weights=cn.get("weights"),
                schedule=cn.get("schedule", "fixed"), fusion=cn.get("fusion", "output"),
                negative_prompt=s.get("negative_prompt", ""))


def _controls(s: dict) -> dict:
    """The pose tab's control rows from `controls` (the old single edges control counts as one)."""
    controls = [dict(c) for c in s.get("controls") or []]
    if s.get("control"):
        controls.append(dict(type="edges", model=s.get("controlnet", ""), strength=s.get("control_scale", 1.0)))
    if len(controls) > len(CONTROL_ROWS):
        raise ValueError(f"This job has {len(controls)} controls; the tab holds {len(CONTROL_ROWS)}. "
                         "Re-run it instead.")
    out = {row["type"]: "none" for row in MORE_CONTROLS}
    for names, c in zip(CONTROL_ROWS, controls):
        defaults = dict(type="pose", model="", strength=1.0, start=0.0, end=1.0, video="", detector="")
        out.update({names[k]: c.get(k, v) for k, v in defaults.items()})
    return out


def _edit(s: dict) -> dict:
    return dict(video=s.get("video", ""), source_prompt=s.get("source_prompt", ""), start=s.get("start", 0.0),
                end=s.get("end") or 0, strength=s.get("strength", 1.0))


def _masks(s: dict) -> dict:
    m = MaskSettings(**(s.get("masks") or {}))
    keep_edges = s.get("control") == "edges"
    return dict(mask_object=s.get("mask_object", ""), mask_method=m.method, box_threshold=m.box_threshold,
                text_threshold=m.text_threshold, instance=m.instance, instance_index=m.index,
                keyframe_every=m.keyframe_every, dilate=m.dilate, feather=m.feather, mask_video=m.upload,
                keep_edges=keep_edges, controlnet=s.get("controlnet", "") if keep_edges else "",
                control_scale=s.get("control_scale", 1.0))


def _tune(s: dict) -> dict:
    if s.get("kind") == "tune":
        return dict(video=s.get("video", ""), start=s.get("start", 0.0), end=s.get("end") or 0, fps=s["fps"],
                    prompt=s.get("prompt", ""), method=s["method"], epochs=s["epochs"], batch_size=s["batch_size"],
                    model=s["model"], learning_rate=s["learning_rate"], identifier_dropout=s["identifier_dropout"],
                    clip_length=s["clip_length"], stride=s["stride"], width=s["width"], height=s["height"])
    from pathlib import Path

    return dict(tuned=Path(s["tuned"]).name, from_noise="noise" if s.get("from_noise") else "video",
                use_identifiers=bool(s.get("use_identifiers", True)), target=s.get("prompt", ""),
                steps=s["steps"], video=s.get("video", ""), start=s.get("start", 0.0), end=s.get("end") or 0)


COMMON = {"prompt", "negative_prompt", "num_frames", "width", "height", "fps", "steps", "guidance", "scheduler",
          "seed", "model", "codenoise"}
SHOWN = {TEXT: COMMON | {"pipeline", "noise_share"},
         POSE: COMMON | {"pipeline", "control", "controlnet", "control_scale", "controls", "control_video"},
         EDIT: COMMON | {"video", "source_prompt", "start", "end", "strength"},
         MASKS: COMMON | {"video", "source_prompt", "start", "end", "strength", "mask_object", "masks", "control",
                          "controlnet", "control_scale"},
         TUNE: {"video", "start", "end", "fps", "prompt", "method", "epochs", "batch_size", "model", "learning_rate",
                "identifier_dropout", "clip_length", "stride", "width", "height", "tuned", "from_noise",
                "use_identifiers", "steps"}}
NESTED_SHOWN = {"codenoise": {"clip_length", "stride", "weights", "schedule", "fusion"},
                "masks": {"method", "box_threshold", "text_threshold", "instance", "index", "keyframe_every",
                          "dilate", "feather", "upload"}}
NOT_SETTINGS = {"kind", "device", "max_frames", "cache_dir", "store_dir"}  # set by the server, not the user


def unshown(tab: str, settings: dict) -> list[str]:
    """Settings of the job that differ from the defaults and that the tab has no field for."""
    def plain(d):  # as stored (JSON: tuples are lists)
        return json.loads(json.dumps(d))

    defaults, settings, out = plain(settings_from_dict({"kind": settings["kind"]}).to_dict()), plain(settings), []
    for key, value in settings.items():
        if key in NOT_SETTINGS or value == defaults.get(key):
            continue
        if key in NESTED_SHOWN and key in SHOWN[tab] and isinstance(value, dict):
            out += [f"{key}.{k}" for k, v in value.items()
                    if k not in NESTED_SHOWN[key] and v != (defaults.get(key) or {}).get(k)]
        elif key not in SHOWN[tab]:
            out.append(key)
    return out


def job_values(settings: dict) -> tuple[str, dict, list[str]]:
    """(tab id, {input name: value}, notes) for a job's settings dict. Notes say what the tab cannot show."""
    settings_from_dict(settings)  # a stored job that no longer reads as settings fails here, in words
    tab, s, notes = tab_for(settings), settings, []
    hidden = unshown(tab, settings)
    if hidden:
        notes.append(f"The tab has no field for {', '.join(hidden)}; a run from the tab uses the defaults there "
                     "('Re-run with the same settings' keeps them).")
    if tab == TUNE:
        return tab, _tune(s), notes
    values = _common(s)
    values["rows"], note = timeline_rows(s.get("prompt", ""), s["num_frames"])
    values["unit"] = FRAMES
    notes += [note] if note else []
    if tab == TEXT:
        values["pipeline"] = s.get("pipeline", "animatediff")
        values["noise_share"] = s.get("noise_share", 0.0)
    if tab in (EDIT, MASKS):
        values.update(_edit(s))
    if tab == MASKS:
        values.update(_masks(s))
    if tab == POSE:
        values.update(_controls(s), control_video=s.get("control_video", ""))
    return tab, values, notes
