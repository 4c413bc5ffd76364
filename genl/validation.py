"""Checks at the edge, before a job is queued: every number finite and in range, every model name allowed.

`settings.validate()` checks how settings fit together (the timeline, M and S); this module checks what a
hostile or careless caller can send through any door (UI, HTTP API, CLI): NaN, infinities, numbers too large
for the engine, and model fields that would make the server open files it was not told to serve. Each
unavailable model path gets one and the same message, so the model field cannot probe the server's disk.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

MAX_SEED = 2**63 - 1  # torch generators take 64-bit seeds; beyond that "Overflow when unpacking long long"
MAX_CONTROLS = 3  # ControlNets at once (pose + depth + edges): each adds a ControlNet pass per UNet call
LIMIT = 10**6  # a bound for values that have no natural one (seconds, frames), far above any real job

# (label for people, whole number?, low, high, low included?) per settings field; None = optional.
_COMMON = {
    "num_frames": ("The video length (frames)", True, 1, LIMIT, True),
    "width": ("The width", True, 1, LIMIT, True),
    "height": ("The height", True, 1, LIMIT, True),
    "fps": ("Frames per second", False, 0, 120, False),
    "steps": ("Steps", True, 1, 1000, True),
    "guidance": ("Guidance", False, 0, 100, True),
    "seed": ("The seed", True, 0, MAX_SEED, True),
    "max_frames": ("The frame limit", True, 1, LIMIT, True),
}
_CODENOISE = {
    "clip_length": ("The clip length M", True, 1, LIMIT, True),
    "stride": ("The stride S", True, 1, LIMIT, True),
    "windows_per_call": ("Windows per call", True, 1, 4096, True),
    "transition_frames": ("Transition frames", True, 0, LIMIT, True),
}
_TRIM = {"start": ("The trim start (s)", False, 0, LIMIT, True),
         "end": ("The trim end (s)", False, 0, LIMIT, False)}
_BY_KIND = {
    "generate": {"control_scale": ("The control strength", False, 0, 2, True),
                 "noise_share": ("The shared noise", False, 0, 1, True)},
    "edit": {**_TRIM,
             "inversion_steps": ("Inversion steps", True, 1, 1000, True),
             "smoothness": ("Smoothness", False, 0, 1000, True),
             "strength": ("The edit strength", False, 0, 1, False),
             "control_scale": ("The control strength", False, 0, 2, True)},
    "tune": {**_TRIM, "clip_length": _CODENOISE["clip_length"], "stride": _CODENOISE["stride"],  # M, S its own
             "epochs": ("Epochs", True, 1, 100000, True),
             "batch_size": ("The batch size", True, 1, 64, True),
             "learning_rate": ("The learning rate", False, 0, 1, False),
             "identifier_dropout": ("The identifier dropout", False, 0, 1, True),
             "lora_rank": ("The LoRA rank", True, 1, 256, True),
             "max_steps": ("The step limit", True, 1, LIMIT, True)},
}
# Form fields of the UI tabs (before they become settings), by the labels people see.
_FORM = {"num_frames": "Length (frames)", "fps": "Frames per second", "width": "Width", "height": "Height",
         "seed": "Seed", "steps": "Steps", "guidance": "Guidance", "clip_length": "Clip length M",
         "stride": "Stride S", "start": "Trim start", "end": "Trim end", "strength": "Edit strength",
         "control_scale": "Control strength", "noise_share": "Shared noise"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def number(value, label: str, whole: bool = False, low: float = -math.inf, high: float = math.inf,
           low_included: bool = True):
    """`value` as an int (whole) or float, or ValueError naming `label` in plain words."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{label} must be a number (got {value!r}).") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{label} must be a finite number (got {value}).")
    if whole:
        if value != int(value):
            raise ValueError(f"{label} must be a whole number (got {value:g}).")
        value = int(value)
    too_low = value < low or (value == low and not low_included)
    if too_low or value > high:
        lo = f"{low:g}" if isinstance(low, float) else str(low)
        hi = f"{high:g}" if isinstance(high, float) else str(high)
        bound = f"at least {lo}" if low_included else f"above {lo}"
        shown = f"{value:g}" if isinstance(value, float) else (str(value) if abs(value) < 10**15 else "a huge number")
        raise ValueError(f"{label} must be {bound} and at most {hi} (got {shown}).")
    return value


_OPTIONAL = ("windows_per_call", "end", "inversion_steps", "max_steps")
_PREVIEW_OPTIONAL = ("fps", "width", "height")  # previews: None = the file's own rate and size


def _check_fields(obj, table: dict) -> None:
    optional = _OPTIONAL + (_PREVIEW_OPTIONAL if getattr(obj, "kind", "").endswith("_preview") else ())
    for name, (label, whole, low, high, low_included) in table.items():
        if not hasattr(obj, name):
            continue
        value = getattr(obj, name)
        optional_here = name in optional or getattr(type(obj), name, 0) is None
        if value is None and optional_here:  # e.g. a preview's fps/size: None means the file's own
            continue
        setattr(obj, name, number(value, label, whole, low, high, low_included))


def check_numbers(settings) -> None:
    """Every numeric setting finite and in range; whole numbers become ints (16.0 -> 16). ValueError if not."""
    _check_fields(settings, _COMMON)
    if hasattr(settings, "codenoise"):  # previews have no windows; a tune job has M and S as its own fields
        _check_fields(settings.codenoise, _CODENOISE)
    _check_fields(settings, _BY_KIND.get(getattr(settings, "kind", ""), {}))
    check_controls(getattr(settings, "controls", None))
    motion = getattr(settings, "motion", None)
    if motion is not None:
        if not isinstance(motion, (list, tuple)) or len(motion) != 2:
            raise ValueError("Motion must be two numbers (dx, dy).")
        settings.motion = tuple(number(v, "Motion", False, -64, 64) for v in motion)


def check_controls(controls) -> None:
    """At most MAX_CONTROLS controls, each with a finite strength in 0..2 and start/end in 0..1 (the controls
    stay dicts or ControlSpecs; their numbers become floats)."""
    if not controls:
        return
    if not isinstance(controls, (list, tuple)):
        raise ValueError("`controls` must be a list of controls (type, model, strength, start, end, video).")
    if len(controls) > MAX_CONTROLS:
        raise ValueError(f"At most {MAX_CONTROLS} controls can steer one video (e.g. pose + depth + edges); "
                         f"got {len(controls)}.")
    for i, control in enumerate(controls, 1):
        for key, label, high in (("strength", "strength", 2), ("start", "start", 1), ("end", "end", 1)):
            value = control.get(key) if isinstance(control, dict) else getattr(control, key, None)
            if value is None:
                continue
            value = number(value, f"Control {i}'s {label}", False, 0, high)
            if isinstance(control, dict):
                control[key] = float(value)
            else:
                setattr(control, key, float(value))


def check_form(values: dict) -> None:
    """The numbers of a UI form (before they become settings) and the from/to cells of its timeline rows."""
    for name, label in _FORM.items():
        value = values.get(name)
        if value is None or value == "":
            continue
        whole = name in ("num_frames", "width", "height", "seed", "steps", "clip_length", "stride")
        # Only finite and convertible here; the settings' own checks give the ranges in their words.
        number(value, label, whole, -LIMIT, MAX_SEED if name == "seed" else LIMIT)
    rows = values.get("rows")
    data = rows.get("data") if isinstance(rows, dict) else (rows.values.tolist() if hasattr(rows, "values") else rows)
    for i, row in enumerate(data or [], 1):
        for column, cell in zip(("from", "to"), list(row)[:2]):
            if isinstance(cell, (int, float)) and not isinstance(cell, bool) and not math.isfinite(cell):
                raise ValueError(f"Timeline row {i}: '{column}' must be a finite number (got {cell}).")
            if isinstance(cell, (int, float)) and abs(cell) > LIMIT:
                raise ValueError(f"Timeline row {i}: '{column}' is far too large (got {cell:g}).")


@dataclass
class ModelPolicy:
    """Which model names a server accepts: the offered ones, hub ids, and folders under `roots`."""

    offered: Sequence[str] = ("demo",)
    roots: Sequence[str] = field(default_factory=list)

    def message(self, name: str, what: str = "model") -> str:
        return (f"The {what} '{name}' is not available on this server. Choose one of the offered models, a "
                "Hugging Face hub id like 'owner/name', or a folder under the server's model folders.")

    def check(self, name: str, what: str = "model") -> None:
        """ValueError (always the same sentence) unless `name` is offered, a hub id, or under a model root."""
        name = str(name or "")
        if name in self.offered:
            return
        if _HUB_ID.match(name) and ".." not in name and not os.path.lexists(name):
            return  # a hub id: resolved by the loader, never as a path
        if name and self._under_root(name):
            return
        raise ValueError(self.message(name, what))

    def _under_root(self, name: str) -> bool:
        try:
            real = Path(os.path.realpath(os.path.expanduser(name)))
            offered = {os.path.realpath(m) for m in self.offered if os.sep in m or os.path.isdir(m)}
            if str(real) in offered:
                return real.is_dir()
            return any(real.is_relative_to(os.path.realpath(r)) and real != Path(os.path.realpath(r))
                       for r in self.roots) and real.is_dir()
        except (OSError, ValueError):
            return False


def check_models(settings, policy: Optional[ModelPolicy]) -> None:
    if policy is None:
        return
    policy.check(settings.model)
    for attr, what in (("motion_adapter", "motion module"), ("controlnet", "ControlNet")):
        value = getattr(settings, attr, "")
        if value:
            policy.check(value, what)
    for control in getattr(settings, "controls", None) or ():  # each ControlNet of a multi-control job
        value = control.get("model", "") if isinstance(control, dict) else getattr(control, "model", "")
        if value:
            policy.check(value, "ControlNet")


def check_settings(settings, policy: Optional[ModelPolicy] = None) -> None:
    """Everything a job must pass before it is queued: numbers, then the settings' own rules, then models."""
    check_numbers(settings)
    settings.validate()
    check_models(settings, policy)
