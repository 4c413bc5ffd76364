"""Job kinds as a table: name -> module (as AnimateDiff-Evolved's CONTEXT_MAPPING picks a schedule).

Every kind module has the same four names:
    Settings                         its settings dataclass (genl/settings.py), with `kind` = the table key
    prepare(settings, ctx)           read inputs (video, control maps), validate once -> (settings, inputs)
    run(settings, inputs, ctx)       run the pipeline (or the light work) -> (F, H, W, 3) uint8 frames
    save(frames, settings, ctx)      write the files -> the outputs dict the worker reports
Adding a kind is its module here, its settings dataclass and its tab; `genl.api.run_job` needs no change.
"""
from __future__ import annotations

from types import ModuleType

from . import control_preview, edge_preview, edit, generate, mask_preview, tune
from .base import JobContext

KINDS: dict[str, ModuleType] = {m.Settings.kind: m for m in (generate, edit, mask_preview, edge_preview,
                                                          control_preview, tune)}


def kind_of(settings) -> ModuleType:
    """The module that runs `settings` (by its class's `kind`)."""
    name = getattr(settings, "kind", "")
    if name not in KINDS:
        raise ValueError(f"Unknown job kind '{name}'. Expected one of: {', '.join(KINDS)}.")
    return KINDS[name]


__all__ = ["KINDS", "JobContext", "kind_of"]
