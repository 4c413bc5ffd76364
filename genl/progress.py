"""One progress shape from the sampler to the browser, and one way to stop a job.

A progress report is a small dict, as k-diffusion's sampler callback passes and ComfyUI's "progress"
message carries ({"value", "max"}):

    {"stage": "inversion" | "denoise" | "decode", "step": int, "total": int, "x0": tensor or None}

The engine calls `callback(event)` with it; the worker adds what only it knows ("type", "job", "time",
"fraction", "eta") and drops "x0" (it becomes a preview PNG) before the event reaches the browser. Nothing
renames or reorders the fields on the way.

`Cancelled` is the only cancel exception: the engine raises it from `check_cancel` between window batches,
steps, decode chunks and file writes; the worker raises it from its progress callback.
"""
from __future__ import annotations

from typing import Callable, Optional

Progress = Callable[[dict], None]
IsCancelled = Callable[[], bool]
STAGES = ("inversion", "denoise", "decode")


class Cancelled(Exception):
    """The job's cancel check turned true; raised at the next check, never mid-kernel."""


def check_cancel(is_cancelled: Optional[IsCancelled]) -> None:
    if is_cancelled is not None and is_cancelled():
        raise Cancelled("The job was cancelled.")


def progress_event(stage: str, step: int, total: int, x0=None) -> dict:
    """The one progress shape (see the module docstring)."""
    return {"stage": stage, "step": int(step), "total": int(total), "x0": x0}


def report(callback: Optional[Progress], stage: str, step: int, total: int, x0=None) -> None:
    if callback is not None:
        callback(progress_event(stage, step, total, x0))
