"""Object masks for "edit anything": an object prompt ("the red circle") -> one mask per frame.

The paper finds the object with GroundingDINO (boxes from text) and SAM (masks from boxes). Those models are
not installed in this studio yet, and we say so rather than fake them. For the bundled demo model's
synthetic shapes world only, a colour segmentation stands in: the world's objects have flat palette colours,
so the colour word of the prompt picks the object exactly. Results say which method made them.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

METHODS = ("auto", "colour", "grounded_sam")
GROUNDED_SAM_MISSING = (
    "Finding objects from a text prompt needs GroundingDINO and SAM, which are not installed in this studio "
    "yet. With the bundled demo model you can use the colour-based stand-in (shapes world only)."
)


@dataclass
class ObjectMasks:
    masks: np.ndarray  # (F, H, W) bool: where the edit may change the video
    method: str
    note: str


def object_masks(frames: np.ndarray, object_prompt: str, method: str = "auto", *, demo: bool = False,
                 grow: int = 2) -> ObjectMasks:
    """Masks of the object named by `object_prompt` in every frame, grown by `grow` pixels so the edit covers
    the object's soft edge. method 'auto' uses the colour stand-in for the demo model, GroundingDINO+SAM else."""
    if not (object_prompt or "").strip():
        raise ValueError("Describe the object to edit (for example 'the red circle').")
    if method not in METHODS:
        raise ValueError(f"Unknown mask method '{method}'. Choose one of: {', '.join(METHODS)}.")
    if method == "auto":
        method = "colour" if demo else "grounded_sam"
    if method == "grounded_sam":
        raise ValueError(GROUNDED_SAM_MISSING)
    masks = colour_object_masks(frames, object_prompt)
    if grow > 0:
        kernel = np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)
        masks = np.stack([cv2.dilate(m.astype(np.uint8), kernel) > 0 for m in masks])
    return ObjectMasks(masks, "colour", "colour segmentation stand-in for GroundingDINO + SAM (shapes world only)")


def colour_object_masks(frames: np.ndarray, object_prompt: str) -> np.ndarray:
    """Shapes world only: pixels of the prompt's colour word (or of any object when it names no colour)."""
    from genl.demo.world import COLOURS
    from genl.demo.world_parse import colour_mask, object_mask

    words = object_prompt.lower().replace(",", " ").split()
    colours = [w for w in words if w in COLOURS]
    if len(colours) > 1:
        raise ValueError(f"Name one colour for the object to edit, not {', '.join(colours)}.")
    if colours:
        masks = np.stack([colour_mask(f, colours[0]) for f in frames])
    else:
        masks = np.stack([object_mask(f) for f in frames])
    if not masks.any():
        raise ValueError(f"No '{object_prompt}' was found in the video: nothing would change.")
    return masks


def overlay(frames: np.ndarray, masks: np.ndarray, colour=(255, 0, 255), alpha: float = 0.5) -> np.ndarray:
    """Frames with the masks tinted, for previewing masks before editing."""
    out = frames.astype(np.float32).copy()
    tint = np.array(colour, np.float32)
    out[masks] = (1 - alpha) * out[masks] + alpha * tint
    return out.round().astype(np.uint8)
