"""Masks over time: detect on keyframes, propagate with a video segmenter, fill frames with no mask.

Keyframes are frame 0, every K-th frame (`keyframe_every`), and any frame where the tracker's object score
drops under `redetect_below` (it is losing the object). Frames arrive in chunks (decoded from the file on demand,
genl/conditions/frames.py); each chunk is one segmenter session that starts from the previous chunk's last masks,
and finished masks are kept bit-packed (1 bit a pixel), so memory stays bounded on long videos.
The segmenter is anything with the `VideoSegmenter` methods (SAM 2 in `sam2_tracker.py`; a deterministic one in
the tests), the detector any callable frames, prompt -> [Detections] (GroundingDINO in `detector.py`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Protocol

import numpy as np

from .detector import Detections, box_iou
from .mask_settings import MaskSettings


class VideoSegmenter(Protocol):
    def start(self, frames: np.ndarray) -> None: ...                          # a new session over a chunk
    def prompt_boxes(self, j: int, boxes: np.ndarray, ids: list[int]) -> None: ...
    def prompt_masks(self, j: int, masks: np.ndarray, ids: list[int]) -> None: ...
    def step(self, j: int) -> tuple[list[int], np.ndarray, np.ndarray]: ...  # ids, (K, H, W) probs, (K,) scores


class NoMatch(ValueError):
    """The prompt matched nothing in the video."""


@dataclass
class TrackResult:
    masks: np.ndarray                    # (F, H, W) bool, union of the chosen instances
    keyframes: list[int] = field(default_factory=list)
    filled: list[int] = field(default_factory=list)   # frames whose mask came from a neighbour
    best_score: float = 0.0


def no_match_message(prompt: str, best: float, threshold: float) -> str:
    return (f"No '{prompt}' found in the video; best score {best:.2f} < threshold {threshold:.2f}. "
            "Describe the object differently or lower the box threshold.")


def choose(det: Detections, settings: MaskSettings) -> np.ndarray:
    """Boxes of the instances to mask, by the settings' rule (largest / all / index-th best score)."""
    if not len(det):
        return det.boxes[:0]
    if settings.instance == "all":
        return det.boxes
    if settings.instance == "largest":
        area = (det.boxes[:, 2:] - det.boxes[:, :2]).prod(-1)
        return det.boxes[[int(np.argmax(area))]]
    if settings.index >= len(det):
        return det.boxes[:0]
    return det.boxes[[settings.index]]


def mask_box(mask: np.ndarray) -> Optional[np.ndarray]:
    ys, xs = np.nonzero(mask)
    return None if not len(xs) else np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def match(boxes: np.ndarray, previous: list[Optional[np.ndarray]], min_iou: float = 0.1) -> dict[int, np.ndarray]:
    """Each tracked object (by its previous box) -> the detected box that overlaps it most, if any does."""
    out = {}
    for k, prev in enumerate(previous):
        if prev is not None and len(boxes):
            iou = box_iou(prev[None], boxes)[0]
            if iou.max() >= min_iou:
                out[k] = boxes[int(iou.argmax())]
    return out


class PackedMasks:
    """Per-frame masks kept as bits while a long video streams through (None = no mask yet); `stack` unpacks."""

    def __init__(self):
        self.frames: list[Optional[np.ndarray]] = []
        self.hw = None

    def append(self, mask: Optional[np.ndarray]) -> None:
        if mask is not None:
            self.hw = mask.shape
            mask = np.packbits(mask)
        self.frames.append(mask)

    def stack(self) -> np.ndarray:
        out = np.empty((len(self.frames), *self.hw), bool)
        for i, bits in enumerate(self.frames):
            out[i] = np.unpackbits(bits, count=out[i].size).reshape(self.hw).view(bool)
        return out


def fill_from_neighbours(masks: list[Optional[np.ndarray]]) -> list[int]:
    """Frames without a mask take the nearest frame's mask (the earlier one on ties); returns those frames."""
    have = [i for i, m in enumerate(masks) if m is not None]
    if not have:
        return []
    filled = []
    for i, m in enumerate(masks):
        if m is None:
            j = min(have, key=lambda h: (abs(h - i), h))
            masks[i] = masks[j]
            filled.append(i)
    return filled


def track(chunks: Iterable[np.ndarray], prompt: str, detect: Callable, segmenter: VideoSegmenter,
          settings: MaskSettings) -> TrackResult:
    """One mask per frame of the object named by `prompt`, propagated between keyframes (see module doc)."""
    masks = PackedMasks()
    keyframes, best = [], 0.0
    objects: list[Optional[np.ndarray]] = []   # per tracked object: its last confident mask ([] = none found yet)
    start = 0
    for chunk in chunks:
        n = len(chunk)
        wanted = [j for j in range(n) if (start + j) % settings.keyframe_every == 0]
        found = dict(zip(wanted, detect(chunk[wanted], prompt, settings.box_threshold, settings.text_threshold)))
        best = max([best] + [d.best for d in found.values()])
        segmenter.start(chunk)
        carried = [k for k, m in enumerate(objects) if m is not None]
        if carried:
            segmenter.prompt_masks(0, np.stack([objects[k] for k in carried]), carried)

        def prompt_from(j: int, det: Detections) -> bool:
            """Prompt the segmenter with `det` at local frame j: new objects, or boxes matched to tracked ones."""
            nonlocal objects
            if all(m is None for m in objects):   # nothing tracked yet, or every object was lost: start over
                boxes = choose(det, settings)
                if not len(boxes):
                    return False
                objects = [None] * len(boxes)
                segmenter.prompt_boxes(j, boxes, list(range(len(boxes))))
                return True
            pairs = match(det.boxes, [None if m is None else mask_box(m) for m in objects])
            if pairs:
                segmenter.prompt_boxes(j, np.stack(list(pairs.values())), list(pairs))
            return bool(pairs)

        for j in range(n):
            i = start + j
            prompted = j in found and prompt_from(j, found[j])
            if prompted:
                keyframes.append(i)
            if not objects:
                masks.append(None)     # nothing found yet: filled from a neighbour later
                continue
            ids, probs, scores = segmenter.step(j)
            if (not len(scores) or scores.min() < settings.redetect_below) and not prompted:
                det = detect(chunk[j:j + 1], prompt, settings.box_threshold, settings.text_threshold)[0]
                best = max(best, det.best)
                if prompt_from(j, det):
                    keyframes.append(i)
                    ids, probs, scores = segmenter.step(j)
            present = scores >= settings.redetect_below
            for k, p, ok in zip(ids, probs, present):
                if ok:
                    objects[k] = p > settings.mask_threshold
            masks.append((probs[present] > settings.mask_threshold).any(0) if present.any() else None)
        start += n
    _check_found(masks.frames, keyframes, prompt, best, settings)
    filled = fill_from_neighbours(masks.frames)
    return TrackResult(masks.stack(), keyframes, filled, best)


def _check_found(masks, keyframes, prompt, best, settings) -> None:
    if not keyframes:
        raise NoMatch(no_match_message(prompt, best, settings.box_threshold))
    if not any(m is not None and m.any() for m in masks):
        raise ValueError(f"'{prompt}' was found (best score {best:.2f}) but the segmenter returned empty masks: "
                         "check the SAM 2 model, or upload a mask video instead.")


def per_frame(chunks: Iterable[np.ndarray], prompt: str, detect: Callable, segmenter: VideoSegmenter,
              settings: MaskSettings) -> TrackResult:
    """Without propagation: detect and segment every frame on its own (the flicker baseline)."""
    masks, best, keyframes = PackedMasks(), 0.0, []
    start = 0
    for chunk in chunks:
        for j, det in enumerate(detect(chunk, prompt, settings.box_threshold, settings.text_threshold)):
            best = max(best, det.best)
            boxes = choose(det, settings)
            if not len(boxes):
                masks.append(None)
                continue
            segmenter.start(chunk[j:j + 1])
            segmenter.prompt_boxes(0, boxes, list(range(len(boxes))))
            _, probs, _ = segmenter.step(0)
            masks.append((probs > settings.mask_threshold).any(0))
            keyframes.append(start + j)
        start += len(chunk)
    _check_found(masks.frames, keyframes, prompt, best, settings)
    filled = fill_from_neighbours(masks.frames)
    return TrackResult(masks.stack(), keyframes, filled, best)


def iter_chunks(frames: np.ndarray, size: int) -> Iterable[np.ndarray]:
    from .frames import frame_chunks

    return frame_chunks(frames, size)
