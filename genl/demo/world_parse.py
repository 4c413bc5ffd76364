"""Read back what a shapes-world frame shows: background, object colour, shape, position and size.

Why: scoring generated videos needs a detector, and in this world a tiny one is exact. Every pixel
is labelled with its nearest colour among the object palette and the detected background's own
colours; the object is the largest object-coloured region; its shape is the template (drawn by the
renderer's own geometry, sharp and blurred, both sides stretched to one square) that overlaps it best.
Nearest-colour decisions fall near 50 % coverage and templates compare whole regions, which is what
keeps the parser tolerant of the blur and noise of diffusion outputs. It stands in for
GroundingDINO + SAM for this world only.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from genl.demo.world import (BACKGROUND_STYLE, BACKGROUNDS, COLOURS, PALETTE, SHAPES, clip_states,
                        random_clip, render_states, shape_coverage, states_alpha)

_OBJECT_RGB = np.array([PALETTE[c] for c in COLOURS], np.float32)
_MIN_AREA = 0.003  # regions smaller than this fraction of the frame are stars, flakes or noise


def _background_refs(name: str) -> np.ndarray:
    """Reference colours of a background: points along its gradient, its texture colour and
    mixes, and darker/lighter variants that the textures produce."""
    top, bottom, accent = (np.array(c, np.float32) for c in BACKGROUND_STYLE[name])
    ramp = [top + (bottom - top) * k / 4 for k in range(5)]
    mixes = [(top + accent) / 2, (bottom + accent) / 2, accent, accent * 0.6]
    shades = [top * 0.6, bottom * 0.6, np.minimum(bottom * 1.15, 255), np.full(3, 255, np.float32)]
    return np.stack(ramp + mixes + shades)


_BACKGROUND_REFS = {name: _background_refs(name) for name in BACKGROUNDS}


@dataclass(frozen=True)
class FrameParse:
    """What a frame shows. x, y: centroid of the object's pixels (0..1); size: its area fraction.

    Object fields are None when no object is found; confidence (0..1) is then 0.
    """
    colour: str | None
    shape: str | None
    x: float | None
    y: float | None
    size: float | None
    background: str
    confidence: float


def _check_frame(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"A frame must be an H x W x 3 RGB image, got an array of shape {frame.shape}.")
    if frame.dtype != np.uint8:
        raise ValueError(f"A frame must hold 8-bit pixels (uint8), got {frame.dtype}.")
    return frame


def _nearest(pixels: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """Index of the nearest reference colour (Euclidean RGB) for every pixel."""
    p = pixels.astype(np.float32)
    # |p - r|^2 without the |p|^2 term, which is the same for every reference.
    return ((refs ** 2).sum(-1) - 2 * p @ refs.T).argmin(-1)


def classify_background(frame: np.ndarray) -> tuple[str, float]:
    """(background, share of votes): each pixel of a 32x32 thumbnail votes for the background
    owning its nearest reference colour; object-coloured pixels abstain."""
    small = cv2.resize(_check_frame(frame), (32, 32), interpolation=cv2.INTER_AREA)
    refs = np.concatenate([_OBJECT_RGB] + [_BACKGROUND_REFS[b] for b in BACKGROUNDS])
    owner = np.concatenate([np.full(len(COLOURS), -1)] +
                           [np.full(len(_BACKGROUND_REFS[b]), i) for i, b in enumerate(BACKGROUNDS)])
    votes = owner[_nearest(small, refs)]
    counts = np.bincount(votes[votes >= 0], minlength=len(BACKGROUNDS))
    best = int(counts.argmax())
    return BACKGROUNDS[best], float(counts[best] / max(counts.sum(), 1))


def _colour_labels(frame: np.ndarray, background: str) -> np.ndarray:
    """(H, W) index into COLOURS of each pixel, or -1 where the background's colours are nearer."""
    refs = np.concatenate([_OBJECT_RGB, _BACKGROUND_REFS[background]])
    idx = _nearest(frame, refs)
    return np.where(idx < len(COLOURS), idx, -1)


def _fill(mask: np.ndarray) -> np.ndarray:
    """Mask with holes filled (noise inside an object must not punch holes in it)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return cv2.drawContours(np.zeros(mask.shape, np.uint8), contours, -1, 1, thickness=-1).astype(bool)


def _regions(frame: np.ndarray, labels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Object-coloured regions, largest first, as (bool mask, colour votes).

    Nearest-palette labels are biased at edges (a half red, half grass pixel may sit nearer some
    dark-grass reference than to red), so each region's edge is re-decided against the region's
    own colour and the background colour just around it: object where a pixel is nearer the former,
    i.e. where it is at least half covered.
    """
    n, comp, stats, _ = cv2.connectedComponentsWithStats((labels >= 0).astype(np.uint8), connectivity=8)
    min_area = max(4, _MIN_AREA * labels.size)
    kernel = np.ones((3, 3), np.uint8)
    pixels = frame.astype(np.float32)
    out = []
    for i in sorted(range(1, n), key=lambda i: -stats[i, cv2.CC_STAT_AREA]):
        if stats[i, cv2.CC_STAT_AREA] < min_area:
            break
        region = (comp == i).astype(np.uint8)
        # Colour votes and colour come from the interior: edges mix object and background.
        inner = cv2.erode(region, kernel).astype(bool)
        inner = inner if inner.any() else region.astype(bool)
        voters = labels[inner]
        near = cv2.dilate(region, kernel).astype(bool)
        ring = cv2.dilate(region, kernel, iterations=3).astype(bool) & ~near & (labels < 0)
        if ring.any():
            inside, outside = np.median(pixels[inner], 0), np.median(pixels[ring], 0)
            closer = ((pixels - inside) ** 2).sum(-1) < ((pixels - outside) ** 2).sum(-1)
            if (near & closer).sum() >= min_area:  # else keep the palette decision
                region = near & closer
        out.append((_fill(region), np.bincount(voters[voters >= 0], minlength=len(COLOURS))))
    return out


_TEMPLATE_PX = 32
_BLUR_LEVELS = (0.0, 0.03, 0.06, 0.09)  # blur sigma as a fraction of the object's side; more
# would let a blurred star pass for a circle


def _template(shape: str, blur: float) -> np.ndarray:
    """Mask of a shape as it looks after blur and a 50 % threshold, cropped to its bounding box
    and resized to a fixed square, so that it can be compared with any observed region."""
    side, pad = 96, 48
    cover = shape_coverage(shape, (pad, pad, side, side), (side + 2 * pad, side + 2 * pad))
    if blur > 0:
        cover = cv2.GaussianBlur(cover, (0, 0), blur * side)
    return _normalise(cover >= 0.5)


def _normalise(mask: np.ndarray) -> np.ndarray:
    """Crop a mask to its bounding box and resize it to _TEMPLATE_PX squared."""
    ys, xs = np.nonzero(mask)
    crop = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32)
    return cv2.resize(crop, (_TEMPLATE_PX, _TEMPLATE_PX), interpolation=cv2.INTER_AREA) >= 0.5


# Generated frames are soft: a blurred star loses its points, so it is compared with blurred stars.
_TEMPLATES = [(shape, _template(shape, blur)) for shape in SHAPES for blur in _BLUR_LEVELS]


def _classify_shape(mask: np.ndarray) -> tuple[str, float]:
    """(shape, IoU) of the template that best overlaps the mask, both stretched to one square."""
    seen = _normalise(mask)
    scores: dict[str, float] = {}
    for shape, tmpl in _TEMPLATES:
        iou = (tmpl & seen).sum() / max((tmpl | seen).sum(), 1)
        scores[shape] = max(scores.get(shape, 0.0), float(iou))
    best = max(scores, key=scores.get)
    return best, scores[best]


def parse_frame(frame: np.ndarray) -> FrameParse:
    """Read background, object colour, shape, centroid and area fraction from one frame."""
    frame = _check_frame(frame)
    background, bg_share = classify_background(frame)
    regions = _regions(frame, _colour_labels(frame, background))
    if not regions:
        return FrameParse(None, None, None, None, None, background, 0.0)
    mask, votes = regions[0]
    colour = COLOURS[int(votes.argmax())]
    shape, iou = _classify_shape(mask)
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    confidence = min(bg_share, votes.max() / max(votes.sum(), 1), iou)
    return FrameParse(colour, shape, float((xs.mean() + 0.5) / w), float((ys.mean() + 0.5) / h),
                      float(mask.mean()), background, float(confidence))


def colour_mask(frame: np.ndarray, colour: str) -> np.ndarray:
    """Bool mask (H, W) of the regions whose colour is `colour` (e.g. the prompt "red")."""
    if colour not in COLOURS:
        raise ValueError(f"Unknown colour '{colour}'. Choose one of: {', '.join(COLOURS)}.")
    frame = _check_frame(frame)
    mask = np.zeros(frame.shape[:2], bool)
    for region, votes in _regions(frame, _colour_labels(frame, classify_background(frame)[0])):
        if COLOURS[int(votes.argmax())] == colour:
            mask |= region
    return mask


def object_mask(frame: np.ndarray) -> np.ndarray:
    """Bool mask (H, W) of the object (the largest object-coloured region); all False if none."""
    frame = _check_frame(frame)
    regions = _regions(frame, _colour_labels(frame, classify_background(frame)[0]))
    return regions[0][0] if regions else np.zeros(frame.shape[:2], bool)


def degrade(frame: np.ndarray, blur_sigma: float = 0.0, noise_std: float = 0.0,
            seed: int = 0) -> np.ndarray:
    """Gaussian blur (sigma in px) then Gaussian noise (std in 0..255 units): a stand-in for the
    softness of diffusion outputs, used to check the parser's tolerance."""
    out = _check_frame(frame).astype(np.float32)
    if blur_sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur_sigma)
    if noise_std > 0:
        out = out + np.random.default_rng(seed).normal(0.0, noise_std, out.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def true_centroid(alpha: np.ndarray) -> tuple[float, float]:
    """Coverage-weighted centroid (x, y), normalised, of a true object mask from `states_alpha`."""
    h, w = alpha.shape
    ys, xs = np.mgrid[0:h, 0:w]
    total = alpha.sum()
    return float(((xs + 0.5) * alpha).sum() / total / w), float(((ys + 0.5) * alpha).sum() / total / h)


def parse_accuracy(n_clips: int = 200, seed: int = 0, size: int = 128, blur_sigma: float = 0.0,
                   noise_std: float = 0.0) -> dict[str, float]:
    """Render one random frame of each of n random clips and score the parser against truth.

    Returns accuracies of colour, shape and background, and the mean and max centroid error.
    """
    rng = np.random.default_rng(seed)
    hits = {"colour": 0, "shape": 0, "background": 0}
    errors = []
    for i in range(n_clips):
        spec = random_clip(rng)
        state = clip_states(spec, 16)[int(rng.integers(16))]
        frame = degrade(render_states([state], spec.seed, size)[0], blur_sigma, noise_std, seed=i)
        got = parse_frame(frame)
        for key in hits:
            hits[key] += getattr(got, key) == getattr(state, key)
        if got.x is None:
            errors.append(1.0)
        else:
            tx, ty = true_centroid(states_alpha([state], size)[0])
            errors.append(float(np.hypot(got.x - tx, got.y - ty)))
    result = {key: value / n_clips for key, value in hits.items()}
    result.update(position_error=float(np.mean(errors)), position_error_max=float(np.max(errors)),
                  n=n_clips)
    return result
