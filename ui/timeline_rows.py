"""The timeline table as people edit it: rows (from, to, prompt, negative) in seconds or frames, the row
buttons, the windows strip's data, and what an upload holds after trimming.

Pure functions (no Gradio, no tensors) so the tab files stay thin and this stays testable. Every user
mistake becomes a ValueError whose message the UI shows as it is.
"""
from __future__ import annotations

import json
import math
from typing import Optional, Sequence

from genl.codenoise import make_windows
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
