"""From what people type in the studio to settings objects: timeline rows, units, the windows strip.

Pure functions (no Gradio, no tensors) so the UI files stay thin and this stays testable. Every user
mistake becomes a ValueError whose message the UI shows as it is.
"""
from __future__ import annotations

import json
import math
import random
from typing import Optional, Sequence

from genl.codenoise import make_windows
from genl.settings import CoDenoiseSettings, EditSettings, GenerateSettings
from genl.timeline import Timeline, load_timeline

COLUMNS = ["from", "to", "prompt", "negative"]
SECONDS, FRAMES = "seconds", "frames"


def _number(value, row: int, column: str) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"Timeline row {row}: the '{column}' cell is empty.")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Timeline row {row}: '{value}' in '{column}' is not a number.") from None
    if math.isnan(x) or x < 0:
        raise ValueError(f"Timeline row {row}: '{column}' cannot be negative (got {value}).")
    return x


def _clean_rows(rows) -> list[list]:
    """Table value (list of lists, or a pandas frame) -> rows, dropping rows that are entirely empty."""
    if rows is None:
        return []
    if hasattr(rows, "values") and hasattr(rows, "columns"):
        rows = rows.values.tolist()
    out = []
    for row in rows:
        row = list(row) + [""] * (4 - len(row))
        if all(c is None or str(c).strip() == "" or (isinstance(c, float) and math.isnan(c)) for c in row[:4]):
            continue
        out.append(row[:4])
    return out


def rows_to_frames(rows, unit: str, fps: float) -> list[tuple[int, int, str, str]]:
    """(from, to, prompt, negative) rows -> inclusive frame ranges.

    In seconds a row covers [from, to): 0-2 s and 2-4 s at 8 fps are frames 0-15 and 16-31.
    In frames both ends are included, as in the text form "0-47: ...".
    """
    out = []
    for n, (start, end, prompt, negative) in enumerate(_clean_rows(rows), 1):
        a, b = _number(start, n, "from"), _number(end, n, "to")
        if unit == SECONDS:
            first, last = int(round(a * fps)), int(round(b * fps)) - 1
            if b <= a:
                raise ValueError(f"Timeline row {n} ends ({b:g} s) before it starts ({a:g} s).")
        else:
            first, last = int(round(a)), int(round(b))
            if last < first:
                raise ValueError(f"Timeline row {n} ends (frame {last}) before it starts (frame {first}).")
        out.append((first, last, str(prompt or "").strip(), str(negative or "").strip()))
    if not out:
        raise ValueError("The timeline is empty: add a row with a prompt.")
    return out


def rows_to_timeline(rows, unit: str, fps: float, num_frames: int) -> Timeline:
    return Timeline.from_rows(rows_to_frames(rows, unit, fps)).validate(num_frames)


def timeline_prompt(rows, unit: str, fps: float) -> str:
    """The settings' prompt field: the timeline as JSON text (safe for any prompt wording).

    Not validated here: `settings.validate()` checks it against the length, after the length itself."""
    return json.dumps(Timeline.from_rows(rows_to_frames(rows, unit, fps)).to_json())


def convert_rows(rows, from_unit: str, to_unit: str, fps: float) -> list[list]:
    """Rewrite the from/to columns when the unit switch changes; cells that are not numbers stay."""
    if from_unit == to_unit:
        return _clean_rows(rows)
    out = []
    for row in _clean_rows(rows):
        try:
            a, b = float(row[0]), float(row[1])
        except (TypeError, ValueError):
            out.append(row)
            continue
        if to_unit == FRAMES:
            out.append([int(round(a * fps)), int(round(b * fps)) - 1, row[2], row[3]])
        else:
            out.append([round(a / fps, 3), round((b + 1) / fps, 3), row[2], row[3]])
    return out


def add_row(rows, unit: str, fps: float, num_frames: int) -> list[list]:
    """Append a row from the end of the last one to the end of the video (or one second/frame)."""
    rows = _clean_rows(rows)
    end = num_frames / fps if unit == SECONDS else num_frames - 1
    start = 0.0
    if rows:
        try:
            start = float(rows[-1][1]) + (0 if unit == SECONDS else 1)
        except (TypeError, ValueError):
            start = 0.0
    if start >= end:
        end = start + (1 if unit == FRAMES else 1.0)
    if unit == FRAMES:
        start, end = int(start), int(end)
    return rows + [[_tidy(start), _tidy(end), "", ""]]


def remove_row(rows, index: Optional[int]) -> list[list]:
    """Remove the selected row (the last one when none is selected)."""
    rows = _clean_rows(rows)
    if not rows:
        return rows
    i = index if index is not None and 0 <= index < len(rows) else len(rows) - 1
    return rows[:i] + rows[i + 1:]


def split_row(rows, index: Optional[int], unit: str) -> list[list]:
    """Split the selected row (the last one when none is selected) in two halves with the same prompt."""
    rows = _clean_rows(rows)
    if not rows:
        raise ValueError("There is no row to split: add one first.")
    i = index if index is not None and 0 <= index < len(rows) else len(rows) - 1
    start, end = _number(rows[i][0], i + 1, "from"), _number(rows[i][1], i + 1, "to")
    if unit == FRAMES:
        if end - start < 1:
            raise ValueError(f"Row {i + 1} is a single frame and cannot be split.")
        mid = int(start + (end - start + 1) // 2)
        halves = [[int(start), mid - 1, rows[i][2], rows[i][3]], [mid, int(end), rows[i][2], rows[i][3]]]
    else:
        if end <= start:
            raise ValueError(f"Row {i + 1} ends before it starts and cannot be split.")
        mid = round((start + end) / 2, 3)
        halves = [[_tidy(start), _tidy(mid), rows[i][2], rows[i][3]],
                  [_tidy(mid), _tidy(end), rows[i][2], rows[i][3]]]
    return rows[:i] + halves + rows[i + 1:]


def _tidy(x):
    return int(x) if float(x).is_integer() else round(float(x), 3)


def default_rows(unit: str, fps: float, num_frames: int, prompts: Sequence[str]) -> list[list]:
    """Equal segments for `prompts` over the video."""
    rows, k = [], len(prompts)
    for i, p in enumerate(prompts):
        a, b = num_frames * i // k, num_frames * (i + 1) // k
        rows.append([_tidy(a / fps), _tidy(b / fps), p, ""] if unit == SECONDS else [a, b - 1, p, ""])
    return rows


def strip_data(rows, unit: str, fps: float, num_frames: int, clip_length: int, stride: int,
               loop: bool = False) -> dict:
    """What the visual strip draws: segments (frames), windows (M, S) and problems as messages."""
    data = {"num_frames": int(num_frames), "segments": [], "windows": [], "errors": []}
    try:
        data["segments"] = [{"start": a, "end": b, "prompt": p} for a, b, p, _ in rows_to_frames(rows, unit, fps)]
        rows_to_timeline(rows, unit, fps, num_frames)
    except ValueError as err:
        data["errors"].append(str(err))
    try:
        data["windows"] = make_windows(num_frames, clip_length, stride, loop=loop)
    except ValueError as err:
        data["errors"].append(str(err))
    return data


def seed_value(seed, randomize: bool) -> int:
    if randomize or seed is None or seed == "" or int(seed) < 0:
        return random.randint(0, 2**31 - 1)
    return int(seed)


def codenoise(clip_length, stride, weights, loop=False) -> CoDenoiseSettings:
    return CoDenoiseSettings(clip_length=int(clip_length), stride=int(stride), weights=str(weights), loop=bool(loop))


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
                                    values.get("loop", False)))


def generate_settings(values: dict) -> GenerateSettings:
    """Settings for a text -> video job from the tab's values (rows, unit and the Advanced fields)."""
    common = _common(values)
    prompt = timeline_prompt(values["rows"], values.get("unit", SECONDS), common["fps"])
    return GenerateSettings(prompt=prompt, pipeline=str(values.get("pipeline") or "animatediff"), **common)


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
    prompt = timeline_prompt(values["rows"], values.get("unit", SECONDS), common["fps"])
    return EditSettings(prompt=prompt, video=str(values["video"]), start=start, end=end,
                        source_prompt=str(values.get("source_prompt") or ""), **common)


def summarize_prompt(prompt: str, limit: int = 80) -> str:
    """'a cat → a dog' for tables."""
    try:
        tl = load_timeline(prompt)
        text = " → ".join(p for p, _ in tl.prompts())
    except ValueError:
        text = prompt
    return text if len(text) <= limit else text[: limit - 1] + "…"


def inspect_video(path, fps: Optional[float] = None, start: float = 0.0, end: Optional[float] = None,
                  max_frames: Optional[int] = None, samples: int = 8) -> dict:
    """What an upload holds after trimming: its info, the exact frame count the job will see, and a few
    small sample frames to show. Raises ValueError (in plain words) for files that are not videos."""
    from genl.video_io import probe_video, read_video

    if not path:
        raise ValueError("No file uploaded yet.")
    info = probe_video(path)
    frames, used_fps = read_video(path, fps=fps or None, start=float(start or 0), end=end or None,
                                  max_frames=max_frames, size=64)
    if len(frames) == 0:
        raise ValueError("The trimmed part of the video has no frames: check the start and end times.")
    step = max(1, len(frames) // samples)
    return {"info": info, "num_frames": int(len(frames)), "fps": float(used_fps),
            "samples": [frames[i] for i in range(0, len(frames), step)][:samples]}


# ---- edit anything and edge control -----------------------------------------------------------------
POSE_MISSING = ("Pose extraction (OpenPose / DWPose) is not installed in this studio, so poses cannot be "
                "followed yet; edges (Canny) work and follow the reference's outlines and motion.")


def _sampled(path, *, fps=None, start=0.0, end=None, max_frames=None, size=None, samples: int = 4):
    """`samples` evenly spaced frames of the (trimmed) video at the job's size, and the total frame count."""
    from genl.video_io import read_video

    if not path:
        raise ValueError("Upload a video first.")
    frames, _ = read_video(path, fps=fps or None, start=float(start or 0), end=end or None,
                           max_frames=max_frames, size=size)
    if len(frames) == 0:
        raise ValueError("The trimmed part of the video has no frames: check the start and end times.")
    picks = sorted({round(i * (len(frames) - 1) / max(1, samples - 1)) for i in range(samples)})
    return frames[picks], len(frames)


def mask_preview(path, object_prompt: str, model: str, method: str = "auto", *, samples: int = 4,
                 **read) -> dict:
    """Masks of `object_prompt` drawn over a few sampled frames, as the edit job will compute them.

    Returns {"frames", "method", "note", "ok"}. A file that is not a video raises ValueError; a mask that
    cannot be made (no masking models, object not found) comes back as ok=False with the plain frames and
    the reason in "note", so the preview still shows what the job would see."""
    from genl.conditions.masks import object_masks, overlay

    frames, _ = _sampled(path, samples=samples, **read)
    try:
        found = object_masks(frames, object_prompt, method, demo=(model or "demo") == "demo")
    except ValueError as err:
        return {"frames": list(frames), "method": None, "note": str(err), "ok": False}
    note = f"Masks made by: {found.note}. Coverage {100 * found.masks.mean():.1f} % of the pixels."
    return {"frames": list(overlay(frames, found.masks)), "method": found.method, "note": note, "ok": True}


def edge_preview(path, *, samples: int = 4, **read) -> dict:
    """Edge maps (Canny) of a few sampled frames: what the ControlNet will follow. {"frames", "num_frames", "note"}"""
    from genl.conditions.edges import edge_map

    frames, total = _sampled(path, samples=samples, **read)
    return {"frames": list(edge_map(frames)), "num_frames": total,
            "note": f"Edges of {len(frames)} of the {total} frames the video will follow. {POSE_MISSING}"}


def masked_edit_settings(values: dict) -> EditSettings:
    """An edit that changes only the object named in values['mask_object'] (and may keep the source's edges)."""
    settings = edit_settings(values)
    settings.mask_object = str(values.get("mask_object") or "").strip()
    if not settings.mask_object:
        raise ValueError("Describe the object to edit (for example 'the red circle').")
    settings.mask_method = str(values.get("mask_method") or "auto")
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
