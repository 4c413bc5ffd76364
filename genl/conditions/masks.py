"""Object masks for "edit anything": an object prompt ("the red circle") -> one mask per frame.

As in the paper, GroundingDINO finds the object from text (boxes on keyframes) and SAM 2 turns boxes into masks
and carries them through the video (`tracker.py`); SAM 3 can do both in one model (method 'sam3'). With the demo
model, 'auto' runs the same GroundingDINO + SAM 2 code on the tiny detectors trained on the shapes world
(assets/demo-detectors), with the settings they were measured best with (its demo_settings.json) where the
user left the defaults. The shapes world's colour segmentation stays a labelled method ('colour'), and the
fallback when those weights are missing. A user may upload a mask video.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np

from .frames import Frames, frame_chunks, frames_shape
from .mask_settings import DEFAULT_DETECTOR, DEFAULT_TRACKER, METHODS, MaskSettings

COLOUR_NOTE = "colour segmentation stand-in for GroundingDINO + SAM 2 (shapes world only; a labelled fallback)"
DEMO_FALLBACK = (" (the demo model's tiny detectors are missing from assets/demo-detectors: "
                 "see its README.md to train them)")


@dataclass
class ObjectMasks:
    masks: np.ndarray  # (F, H, W) bool: where the edit may change the video (after dilation)
    feather: float     # px sigma of the soft edge the edit's composite blends over
    method: str
    note: str
    keyframes: tuple = ()
    filled: tuple = ()

    @property
    def soft(self) -> np.ndarray:
        """(F, H, W) float32 0..1: the masks feathered at the edge (made on demand: 4 bytes a pixel)."""
        return feather(self.masks, self.feather)


def object_masks(frames: Frames, object_prompt: str, method: str = "auto", *, demo: bool = False,
                 settings: Optional[MaskSettings] = None, cache_dir=None, detector=None,
                 tracker=None) -> ObjectMasks:
    """Masks of the object named by `object_prompt` in every frame of `frames`: (F, H, W, 3) uint8, or a
    VideoFrames (a video file decoded `settings.chunk` frames at a time, so a long video is never held whole).

    `settings` carries thresholds, keyframes, instance choice, dilation and feather (MaskSettings defaults);
    `method` overrides settings.method for older callers. `demo` (the demo model is in use) makes 'auto' use the
    bundled demo detectors. `detector`/`tracker` pass already-built components (tests, benchmarks)."""
    settings = settings or MaskSettings()
    if method != "auto":
        settings = replace(settings, method={"grounded_sam": "grounded_sam2"}.get(method, method))
    settings.validate()
    if settings.method != "upload" and not (object_prompt or "").strip():
        raise ValueError("Describe the object to edit (for example 'the red circle').")
    if settings.method == "auto":
        settings = replace(settings, method="grounded_sam2")
    if demo and settings.method == "grounded_sam2" and detector is None:
        settings = _with_demo_models(settings)
    fallback = ""
    if settings.method == "grounded_sam2" and demo and detector is None and not settings.detector:
        settings, fallback = replace(settings, method="colour"), DEMO_FALLBACK

    from .mask_io import MaskCache

    cache = MaskCache(cache_dir) if cache_dir else None
    key = cache.key(frames, object_prompt or "", settings.key()) if cache else None
    hit = cache.get(key) if cache else None
    if hit is not None:
        masks, method_used, note = hit["masks"], hit["method"], hit["note"] + " (from the mask cache)"
        keyframes, filled = (), ()
    else:
        masks, method_used, note, keyframes, filled = _compute(frames, object_prompt, settings, detector, tracker)
        if cache:
            cache.put(key, masks, method_used, note)
    masks = dilate(masks, settings.dilate)
    return ObjectMasks(masks, settings.feather, method_used, note + fallback, tuple(keyframes),
                       tuple(filled))


def _with_demo_models(settings: MaskSettings) -> MaskSettings:
    """The bundled demo detectors, when assets/demo-detectors holds them (else settings unchanged: colour fallback),
    with their measured settings in place of any setting still at its default (a user's choice stays)."""
    from .detector_models import DEMO_DETECTOR, DEMO_TRACKER, demo_detector_settings, demo_detectors_available

    if not demo_detectors_available():
        return settings
    tuned = {}
    if not settings.detector and not settings.tracker:  # both demo models: their measured settings apply
        defaults = MaskSettings()
        tuned = {k: v for k, v in demo_detector_settings().items() if getattr(settings, k) == getattr(defaults, k)}
    return replace(settings, detector=settings.detector or DEMO_DETECTOR, tracker=settings.tracker or DEMO_TRACKER,
                   **tuned)


def _compute(frames, prompt, settings: MaskSettings, detector, tracker):
    if settings.method == "colour":
        return colour_object_masks(frames, prompt, settings.chunk), "colour", COLOUR_NOTE, [], []
    if settings.method == "upload":
        from .mask_io import read_mask_video

        count, *hw = frames_shape(frames)
        masks = read_mask_video(settings.upload, count, tuple(hw))
        return masks, "upload", f"uploaded mask video {Path(settings.upload).name}", [], []
    if settings.method == "sam3":
        return _sam3(frames, prompt, settings, detector)
    from .detector_models import load_detector, load_tracker
    from .tracker import per_frame, track

    detector = detector or load_detector(settings.detector, settings.device)
    tracker = tracker or load_tracker(settings.tracker, settings.device)
    run = track if settings.propagate else per_frame
    result = run(frame_chunks(frames, settings.chunk), prompt, detector, tracker, settings)
    names = f"{_short(settings.detector or DEFAULT_DETECTOR)} + {_short(settings.tracker or DEFAULT_TRACKER)}"
    how = (f"keyframes {len(result.keyframes)}, SAM 2 propagation" if settings.propagate
           else "every frame on its own") + f", box threshold {settings.box_threshold:g}"
    note = f"GroundingDINO + SAM 2 ({names}; {how}; {len(result.filled)} frames filled from neighbours)"
    return result.masks, "grounded_sam2", note, result.keyframes, result.filled


def _sam3(frames, prompt, settings: MaskSettings, segmenter):
    from .detector_models import load_sam3
    from .mask_settings import DEFAULT_SAM3

    segmenter = segmenter or load_sam3(settings.detector, settings.device)
    result = segmenter(frame_chunks(frames, settings.chunk), prompt, settings)
    note = (f"SAM 3 text-prompted video segmentation ({_short(settings.detector or DEFAULT_SAM3)}; its detector on "
            f"every frame, its tracker between; {len(result.filled)} frames filled from neighbours)")
    return result.masks, "sam3", note, result.keyframes, result.filled


def _short(name: str) -> str:
    p = Path(name)
    return f"{p.parent.name}/{p.name}" if p.exists() else name


def dilate(masks: np.ndarray, grow: int) -> np.ndarray:
    """Masks grown by `grow` px (an ellipse), frame by frame into one new array."""
    if grow <= 0:
        return masks.astype(bool, copy=False)
    import cv2
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    out = np.empty(masks.shape, bool)
    for i, m in enumerate(masks):
        out[i] = cv2.dilate(m.astype(np.uint8), kernel) > 0
    return out


def feather(masks: np.ndarray, sigma: float) -> np.ndarray:
    """Soft edges (Gaussian blur of sigma px), clipped so the mask's inside stays 1."""
    soft = masks.astype(np.float32)
    if sigma <= 0:
        return soft
    import cv2
    return np.maximum(soft, np.stack([cv2.GaussianBlur(m, (0, 0), sigma) for m in soft]))


def colour_object_masks(frames: Frames, object_prompt: str, chunk: int = 32) -> np.ndarray:
    """Shapes world only: pixels of the prompt's colour word (or of any object when it names no colour)."""
    from genl.demo.world import COLOURS
    from genl.demo.world_parse import colour_mask, object_mask

    words = object_prompt.lower().replace(",", " ").split()
    colours = [w for w in words if w in COLOURS]
    if len(colours) > 1:
        raise ValueError(f"Name one colour for the object to edit, not {', '.join(colours)}.")
    one = (lambda f: colour_mask(f, colours[0])) if colours else object_mask
    masks = np.concatenate([np.stack([one(f) for f in c]) for c in frame_chunks(frames, chunk)])
    if not masks.any():
        raise ValueError(f"No '{object_prompt}' was found in the video: nothing would change.")
    return masks


def overlay(frames: np.ndarray, masks: np.ndarray, colour=(255, 0, 255), alpha: float = 0.5) -> np.ndarray:
    """Frames with the masks tinted, for previewing masks before editing."""
    out = frames.astype(np.float32).copy()
    tint = np.array(colour, np.float32)
    out[masks] = (1 - alpha) * out[masks] + alpha * tint
    return out.round().astype(np.uint8)


__all__ = ["METHODS", "MaskSettings", "ObjectMasks", "colour_object_masks", "dilate", "feather", "object_masks",
           "overlay"]
