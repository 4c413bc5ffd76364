"""Job events: small JSON-able dicts, one constructor per kind (ComfyUI's execution_* messages).

Every event has "type", "job" (id) and "time". Kinds:
  queued    position (1 = next to run)
  started   worker, device
  progress  the engine's progress dict (genl/progress.py: stage, step, total; tuning adds loss, rate) +
            fraction (0..1 overall), eta (s)
  preview   path (PNG of the current x0 for a few frames), stage, step
  finished  outputs {video, settings, thumbnail, frames_dir}
  failed    message (for people)
  cancelled message
The worker sends them over a multiprocessing queue; the Studio stores them per job for the UI to poll.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

TYPES = ("queued", "started", "progress", "preview", "finished", "failed", "cancelled")
FINAL_TYPES = ("finished", "failed", "cancelled")
# Rough share of a job's time per stage, to turn (stage, step/total) into one progress fraction. Only the
# worker's first guess: the studio re-weights each progress event by the stages' seconds measured on this
# machine (genl/jobs/calibration.py), passing them as `weights` to overall_fraction.
STAGE_SPAN = {"inversion": (0.0, 0.45), "denoise": (0.0, 0.95), "decode": (0.95, 1.0),
              "tune": (0.0, 0.98)}  # one-shot tuning: the rest is writing the weights and the job's files
EDIT_STAGE_SPAN = {"inversion": (0.0, 0.45), "denoise": (0.45, 0.95), "decode": (0.95, 1.0)}


def _event(kind: str, job: str, **data) -> dict:
    return {"type": kind, "job": job, "time": time.time(), **data}


def queued(job: str, position: int) -> dict:
    return _event("queued", job, position=int(position))


def started(job: str, worker: int, device: str) -> dict:
    return _event("started", job, worker=int(worker), device=str(device))


def progress(job: str, stage: str, step: int, total: int, fraction: float, eta: Optional[float]) -> dict:
    return _event("progress", job, stage=stage, step=int(step), total=int(total),
                  fraction=float(fraction), eta=None if eta is None else float(eta))


def engine_progress(job: str, event: dict, fraction: float, eta: Optional[float]) -> dict:
    """The engine's progress dict (genl/progress.py) as it reaches the browser: its own fields unchanged,
    plus what only the worker knows; "x0" stays behind (it becomes a preview image)."""
    data = {"stage": "denoise", "step": 0, "total": 0}
    data.update((k, v) for k, v in event.items() if k != "x0")
    own_eta = data.pop("eta", None)  # tuning reports its own (from its whole-run step rate)
    eta = eta if eta is not None else own_eta
    return _event("progress", job, **data, fraction=float(fraction), eta=None if eta is None else float(eta))


def preview(job: str, path: str, stage: str, step: int) -> dict:
    return _event("preview", job, path=str(path), stage=stage, step=int(step))


def finished(job: str, outputs: dict) -> dict:
    return _event("finished", job, outputs={k: str(v) if isinstance(v, Path) else v
                                            for k, v in outputs.items() if v is not None})


def failed(job: str, message: str) -> dict:
    return _event("failed", job, message=str(message))


def cancelled(job: str, message: str = "Cancelled.") -> dict:
    return _event("cancelled", job, message=str(message))


def overall_fraction(kind: str, stage: str, step: int, total: int, weights: Optional[dict] = None) -> float:
    """One 0..1 number for a progress bar from a stage's step/total. `weights`: expected seconds per stage in
    run order (stages absent from it are not run); without it, the fixed STAGE_SPAN guesses."""
    inner = min(max(step / total, 0.0), 1.0) if total else 0.0
    if weights:
        order = list(weights) + ([] if stage in weights else [stage])
        w = {s: max(float(weights.get(s, 0.0)), 1e-9) for s in order}
        before = sum(w[s] for s in order[:order.index(stage)])
        return (before + w[stage] * inner) / sum(w.values())
    lo, hi = (EDIT_STAGE_SPAN if kind == "edit" else STAGE_SPAN).get(stage, (0.0, 1.0))
    return lo + (hi - lo) * inner


def describe(event: dict) -> str:
    """A one-line human description, for status boxes and logs."""
    t = event.get("type")
    if t == "queued":
        pos = event.get("position", 0)
        return "Queued: next to run." if pos <= 1 else f"Queued: position {pos} in the queue."
    if t == "started":
        return f"Started on {event.get('device', '?')}."
    if t == "progress":
        eta = event.get("eta")
        left = f", about {format_seconds(eta)} left" if eta is not None else ""
        if event.get("loss") is not None:  # tuning: the loss and speed say whether it is still learning
            left = f", loss {event['loss']:.4f}, {event.get('rate') or 0:.2f} steps/s{left}"
        return f"{event['stage'].capitalize()} step {event['step']}/{event['total']} ({event['fraction']:.0%}){left}."
    if t == "preview":
        return f"Preview at {event['stage']} step {event['step']}."
    if t == "finished":  # notices say what a person should know: the demo model, stand-in masks, fallbacks
        notes = event.get("outputs", {}).get("notices") or []
        return " ".join(["Done."] + [str(n) for n in notes])
    if t in ("failed", "cancelled"):
        return event.get("message", t)
    return str(t)


def format_minutes(seconds: Optional[float]) -> str:
    """An estimate in the words people use: "under a minute", "about 5 minutes", "about 1 h 20 min"."""
    if seconds is None:
        return "?"
    minutes = int(round(max(0.0, seconds) / 60))
    if seconds < 45:
        return "under a minute"
    if minutes <= 1:
        return "about a minute"
    if minutes < 60:
        return f"about {minutes} minutes"
    return f"about {minutes // 60} h {minutes % 60:02d} min"


def format_seconds(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
