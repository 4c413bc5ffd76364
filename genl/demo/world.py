"""A deterministic synthetic shapes world: one coloured shape moving over a textured background.

Why it exists: a world whose every frame we can both *render* and *read back* exactly lets us train
a tiny bundled diffusion model offline and score generated videos (prompt fidelity, temporal
consistency, multi-prompt transitions) without any large detector. Rendering lives here; reading
frames back (`parse_frame`, `colour_mask`, `object_mask`, `parse_accuracy`) lives in
`genl.demo.world_parse`.

Caption grammar (fixed, so `parse_caption` can invert it)::

    "a|an {colour} {shape} {motion phrase} over {background}"

with motion phrases "moving left|right|up|down", "bouncing", "staying still" and "growing",
e.g. "a red circle moving right over grass", "a blue star bouncing over night".

Everything is a pure function of its spec: the same spec gives byte-identical frames.
Positions and sizes are normalised to the frame (0..1); `size` is the side of the shape's
bounding square as a fraction of the frame width.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

# Object colours lie >= 100 RGB units from each other and >= 80 from every background colour, so
# nearest-palette segmentation stays reliable on blurry generated frames.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (215, 25, 35),
    "orange": (245, 130, 15),
    "yellow": (250, 230, 40),
    "pink": (240, 70, 190),
    "purple": (140, 40, 200),
    "blue": (20, 40, 200),
}
COLOURS = tuple(PALETTE)
SHAPES = ("circle", "square", "triangle", "diamond", "star")
MOTIONS = ("left", "right", "up", "down", "bounce", "still", "grow")
BACKGROUNDS = ("sky", "grass", "sand", "night", "snow")

# (top colour, bottom colour, texture colour) of each background's vertical gradient.
BACKGROUND_STYLE: dict[str, tuple[tuple[int, int, int], ...]] = {
    "sky": ((70, 140, 225), (150, 200, 245), (245, 248, 252)),
    "grass": ((40, 100, 38), (85, 150, 55), (120, 175, 75)),
    "sand": ((228, 202, 150), (196, 166, 116), (175, 145, 100)),
    "night": ((8, 10, 32), (35, 40, 85), (220, 220, 240)),
    "snow": ((246, 248, 251), (212, 218, 228), (188, 196, 212)),
}

_MOTION_PHRASE = {"left": "moving left", "right": "moving right", "up": "moving up",
                  "down": "moving down", "bounce": "bouncing", "still": "staying still",
                  "grow": "growing"}
# Words a user may type for each motion; parse_caption accepts any of them.
_MOTION_WORDS = {"left": "left", "right": "right", "up": "up", "down": "down",
                 "bounce": "bounce", "bouncing": "bounce", "bounces": "bounce",
                 "still": "still", "grow": "grow", "growing": "grow", "grows": "grow"}

TRAVEL = 0.3      # distance covered by left/right/up/down over one clip or segment
HOP = 0.25        # height of a bounce
GROW = 1.5        # size factor reached by "grow" at the end of a clip or segment
MARGIN = 0.02     # gap kept between the object and the frame edge
MAX_SIZE = 0.42   # growth stops here so the object never dominates the frame
_SUPERSAMPLE = 4  # 4x4 samples per pixel: smooth edges and sub-pixel motion


def _check(kind: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"Unknown {kind} '{value}'. Choose one of: {', '.join(allowed)}.")


def _check_words(spec) -> None:
    _check("colour", spec.colour, COLOURS)
    _check("shape", spec.shape, SHAPES)
    _check("motion", spec.motion, MOTIONS)
    _check("background", spec.background, BACKGROUNDS)


def _check_placement(x0: float, y0: float, size: float) -> None:
    if not 0.0 < size <= MAX_SIZE:
        raise ValueError(f"Object size must be between 0 and {MAX_SIZE} of the frame width, got {size}.")
    if not (0.0 <= x0 <= 1.0 and 0.0 <= y0 <= 1.0):
        raise ValueError(f"Start position must lie inside the frame (0..1), got ({x0}, {y0}).")


@dataclass(frozen=True)
class ClipSpec:
    """One short clip: what the object is, how it moves, where it starts, and the texture seed."""
    colour: str
    shape: str
    motion: str
    background: str
    x0: float = 0.5
    y0: float = 0.5
    size: float = 0.25
    seed: int = 0

    def __post_init__(self):
        _check_words(self)
        _check_placement(self.x0, self.y0, self.size)


@dataclass(frozen=True)
class ObjectState:
    """What one frame shows. x, y is the centre of the shape's bounding square (not its centroid)."""
    colour: str
    shape: str
    background: str
    x: float
    y: float
    size: float


def caption(spec) -> str:
    """Caption in the fixed grammar; accepts anything with colour/shape/motion/background."""
    _check_words(spec)
    article = "an" if spec.colour[0] in "aeiou" else "a"
    return f"{article} {spec.colour} {spec.shape} {_MOTION_PHRASE[spec.motion]} over {spec.background}"


def parse_caption(text: str) -> dict[str, str]:
    """Recover colour, shape, motion and background from a caption or a prompt written like one.

    Word-based rather than a strict regex so that "A red circle, moving right over grass." works.
    """
    words = re.findall(r"[a-z]+", text.lower())
    found = {}
    for kind, vocab in (("colour", {c: c for c in COLOURS}),
                        ("shape", {s: s for s in SHAPES} | {s + "s": s for s in SHAPES}),
                        ("motion", _MOTION_WORDS),
                        ("background", {b: b for b in BACKGROUNDS})):
        hits = sorted({vocab[w] for w in words if w in vocab})
        if not hits:
            raise ValueError(f"The text '{text}' names no {kind} this world knows. "
                             f"Known {kind}s: {', '.join(sorted(set(vocab.values())))}.")
        if len(hits) > 1:
            raise ValueError(f"The text '{text}' names more than one {kind}: {', '.join(hits)}.")
        found[kind] = hits[0]
    return found


# ---------------------------------------------------------------- motion

_STEP_X = {"left": -TRAVEL, "right": TRAVEL}
_STEP_Y = {"up": -TRAVEL, "down": TRAVEL}


def _move(motion: str, x: float, y: float, s: float, t: float) -> tuple[float, float, float]:
    """State after a fraction t (0..1) of one motion, clamped so the object stays in frame."""
    x += _STEP_X.get(motion, 0.0) * t
    y += _STEP_Y.get(motion, 0.0) * t
    if motion == "bounce":  # two hops, landing back on the start height at t = 1
        y -= HOP * abs(math.sin(2 * math.pi * t))
    if motion == "grow":
        s = min(s * (1 + (GROW - 1) * t), MAX_SIZE)
    half = s / 2 + MARGIN
    return min(max(x, half), 1 - half), min(max(y, half), 1 - half), s


def _fits(motion: str, x: float, y: float, s: float) -> bool:
    """True when the whole motion runs without touching the clamp, so its caption stays true."""
    end_s = s * GROW if motion == "grow" else s
    half = end_s / 2 + MARGIN
    dy = -HOP if motion == "bounce" else _STEP_Y.get(motion, 0.0)
    ends = (x, x + _STEP_X.get(motion, 0.0), y, y + dy)
    return end_s <= MAX_SIZE and all(half <= v <= 1 - half for v in ends)


def _segment_states(colour, shape, motion, background, start, n) -> list[ObjectState]:
    """n frames of one motion from start=(x, y, s); frame k is at t = k/n so that the next
    segment's first frame (t = 1) follows with exactly one more step: the path is continuous."""
    return [ObjectState(colour, shape, background, *_move(motion, *start, k / n)) for k in range(n)]


def clip_states(spec: ClipSpec, num_frames: int = 16) -> list[ObjectState]:
    """Ground-truth state of every frame of a clip."""
    if num_frames < 1:
        raise ValueError(f"A clip needs at least one frame, got {num_frames}.")
    return _segment_states(spec.colour, spec.shape, spec.motion, spec.background,
                           (spec.x0, spec.y0, spec.size), num_frames)


# ---------------------------------------------------------------- rendering

def _smooth_noise(rng: np.random.Generator, size: int, cells_y: int, cells_x: int) -> np.ndarray:
    """Low-frequency noise in ~0..1: a coarse random grid upsampled bicubically."""
    grid = rng.random((cells_y, cells_x)).astype(np.float32)
    return np.asarray(Image.fromarray(grid).resize((size, size), Image.Resampling.BICUBIC))


def background_image(name: str, seed: int, size: int = 128) -> np.ndarray:
    """Textured background (H, W, 3) uint8: gradient plus a pattern, a pure function of (name, seed).

    The texture is laid out relative to the frame, so it looks alike at 64, 128 and 256 px.
    """
    _check("background", name, BACKGROUNDS)
    rng = np.random.default_rng([seed, BACKGROUNDS.index(name)])
    top, bottom, accent = (np.array(c, np.float32) for c in BACKGROUND_STYLE[name])
    g = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(top * (1 - g) + bottom * g, (size, size, 3)).copy()
    grain = rng.normal(0.0, 1.0, (size, size, 1)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if name == "sky":  # soft clouds
        a = np.clip((_smooth_noise(rng, size, 5, 5) - 0.55) * 2.5, 0, 0.75)[..., None]
        img = img * (1 - a) + accent * a + 2 * grain
    elif name == "grass":  # vertical blades: noise stretched along y
        blades = _smooth_noise(rng, size, 6, 40)[..., None] - 0.5
        img = img + blades * (accent - img) * 1.2 + 5 * grain
    elif name == "sand":  # wind ripples
        phase = rng.uniform(0, 2 * np.pi, 2)
        ripple = np.sin(2 * np.pi * (9 * yy + 0.3 * np.sin(2 * np.pi * 1.3 * xx + phase[0]))
                        + phase[1])[..., None]
        img = img + 10 * ripple + 6 * grain
    elif name == "night":  # stars
        img = img + 2 * grain
        n = max(8, size * size // 300)
        ys, xs = rng.integers(0, size, n), rng.integers(0, size, n)
        img[ys, xs] = accent * rng.uniform(0.6, 1.0, (n, 1))
    else:  # snow: drifts and flakes
        drift = _smooth_noise(rng, size, 4, 6)[..., None]
        img = img * (1 - 0.5 * drift) + accent * 0.5 * drift + 3 * grain
        n = max(8, size * size // 150)
        img[rng.integers(0, size, n), rng.integers(0, size, n)] = 255.0
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _unit_outline(shape: str) -> list[tuple[float, float]] | None:
    """Polygon of a shape filling the unit square (y down); None for the circle."""
    if shape == "square":
        return [(0, 0), (1, 0), (1, 1), (0, 1)]
    if shape == "triangle":
        return [(0.5, 0), (1, 1), (0, 1)]
    if shape == "diamond":
        return [(0.5, 0), (1, 0.5), (0.5, 1), (0, 0.5)]
    if shape == "star":  # five points, inner radius 0.45, stretched to fill the square
        pts = [(r * math.cos(a), r * math.sin(a)) for k in range(10)
               for r, a in [((1.0, 0.45)[k % 2], -math.pi / 2 + k * math.pi / 5)]]
        lo_y, hi_y = -1.0, max(p[1] for p in pts)
        wx = max(p[0] for p in pts)
        return [((px + wx) / (2 * wx), (py - lo_y) / (hi_y - lo_y)) for px, py in pts]
    return None


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether unit-square points (u, v) lie inside the shape (even-odd rule for polygons)."""
    outline = _unit_outline(shape)
    if outline is None:
        return (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25  # broadcasts like the polygons
    inside = np.zeros(np.broadcast_shapes(u.shape, v.shape), bool)
    for (u1, v1), (u2, v2) in zip(outline, outline[1:] + outline[:1]):
        if v1 != v2:
            crosses = (v1 > v) != (v2 > v)
            inside ^= crosses & (u < u1 + (v - v1) * (u2 - u1) / (v2 - v1))
    return inside


def shape_coverage(shape: str, box: tuple[float, float, float, float],
                   hw: tuple[int, int]) -> np.ndarray:
    """Anti-aliased coverage (H, W) float32 in 0..1 of `shape` filling box=(left, top, w, h) px.

    Coverage is the fraction of a 4x4 grid of sample points inside the shape, so edges are smooth
    and sub-pixel motion is exact (pixel i spans [i, i+1)). Shared by the renderer and the parser's
    shape templates so both see the same geometry.
    """
    _check("shape", shape, SHAPES)
    left, top, w, h = box
    height, width = hw
    out = np.zeros((height, width), np.float32)
    x_lo, y_lo = max(int(math.floor(left)), 0), max(int(math.floor(top)), 0)
    x_hi, y_hi = min(int(math.ceil(left + w)), width), min(int(math.ceil(top + h)), height)
    if x_hi <= x_lo or y_hi <= y_lo or w <= 0 or h <= 0:
        return out
    ss = _SUPERSAMPLE
    offsets = (np.arange(ss) + 0.5) / ss
    xs = (np.arange(x_lo, x_hi)[:, None] + offsets).ravel()
    ys = (np.arange(y_lo, y_hi)[:, None] + offsets).ravel()
    inside = _inside(shape, ((xs - left) / w)[None, :], ((ys - top) / h)[:, None])
    out[y_lo:y_hi, x_lo:x_hi] = inside.reshape(y_hi - y_lo, ss, x_hi - x_lo, ss).mean(axis=(1, 3))
    return out


def states_alpha(states: list[ObjectState], size: int = 128) -> np.ndarray:
    """True object coverage (F, H, W) float32 for ground-truth masks and metrics."""
    return np.stack([shape_coverage(st.shape, ((st.x - st.size / 2) * size,
                                               (st.y - st.size / 2) * size,
                                               st.size * size, st.size * size), (size, size))
                     for st in states])


def render_states(states: list[ObjectState], seed: int, size: int = 128) -> np.ndarray:
    """Frames (F, H, W, 3) uint8 showing `states`; backgrounds depend only on (name, seed),
    so an unchanged background never flickers, even across segments."""
    if size < 16:
        raise ValueError(f"Frames must be at least 16 pixels wide, got {size}.")
    backgrounds: dict[str, np.ndarray] = {}
    alpha = states_alpha(states, size)[..., None]
    frames = np.empty((len(states), size, size, 3), np.uint8)
    for i, st in enumerate(states):
        if st.background not in backgrounds:
            backgrounds[st.background] = background_image(st.background, seed, size).astype(np.float32)
        mixed = backgrounds[st.background] * (1 - alpha[i]) + np.float32(PALETTE[st.colour]) * alpha[i]
        frames[i] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return frames


def render_clip(spec: ClipSpec, num_frames: int = 16, size: int = 128) -> np.ndarray:
    """Frames (F, H, W, 3) uint8 of one clip."""
    return render_states(clip_states(spec, num_frames), spec.seed, size)


def _as_rng(rng_or_seed) -> np.random.Generator:
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    return np.random.default_rng(rng_or_seed)


def _random_start(rng: np.random.Generator, motion: str, size: float) -> tuple[float, float]:
    """A start position from which the whole motion fits in frame (rejection sampling)."""
    for _ in range(1000):
        x, y = rng.uniform(0, 1, 2)
        if _fits(motion, x, y, size):
            return float(x), float(y)
    raise ValueError(f"No start position fits a {motion} motion of an object of size {size}.")


def random_clip(rng_or_seed=None) -> ClipSpec:
    """A clip drawn uniformly from the vocabulary, placed so its motion never hits the frame edge."""
    rng = _as_rng(rng_or_seed)
    colour, shape, motion, background = (str(rng.choice(v))
                                         for v in (COLOURS, SHAPES, MOTIONS, BACKGROUNDS))
    size = float(rng.uniform(0.2, 0.28 if motion == "grow" else 0.32))
    x0, y0 = _random_start(rng, motion, size)
    return ClipSpec(colour, shape, motion, background, x0, y0, size, int(rng.integers(2**31)))


# ---------------------------------------------------------------- multi-prompt long videos

@dataclass(frozen=True)
class Segment:
    """Frames first..last (inclusive) showing one colour/shape/background doing one motion."""
    first: int
    last: int
    colour: str
    shape: str
    motion: str
    background: str

    def __post_init__(self):
        _check_words(self)
        if not 0 <= self.first <= self.last:
            raise ValueError(f"A segment must cover frames first..last with 0 <= first <= last, "
                             f"got {self.first}..{self.last}.")


@dataclass(frozen=True)
class LongVideoSpec:
    """Consecutive segments over one continuous object trajectory starting at (x0, y0, size)."""
    segments: tuple[Segment, ...]
    x0: float = 0.5
    y0: float = 0.5
    size: float = 0.25
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "segments", tuple(self.segments))
        if not self.segments:
            raise ValueError("A long video needs at least one segment.")
        expected = 0
        for seg in self.segments:
            if seg.first != expected:
                raise ValueError(f"Segments must follow each other without gaps or overlaps: "
                                 f"expected a segment starting at frame {expected}, got {seg.first}.")
            expected = seg.last + 1
        _check_placement(self.x0, self.y0, self.size)

    @property
    def num_frames(self) -> int:
        return self.segments[-1].last + 1


def long_video_states(spec: LongVideoSpec) -> list[ObjectState]:
    """Ground truth per frame; each segment starts where the previous one's motion ended."""
    states, start = [], (spec.x0, spec.y0, spec.size)
    for seg in spec.segments:
        n = seg.last - seg.first + 1
        states += _segment_states(seg.colour, seg.shape, seg.motion, seg.background, start, n)
        start = _move(seg.motion, *start, 1.0)
    return states


def render_long_video(spec: LongVideoSpec, size: int = 128) -> np.ndarray:
    """Frames (F, H, W, 3) uint8 of a multi-prompt video."""
    return render_states(long_video_states(spec), spec.seed, size)


def long_video_timeline(spec: LongVideoSpec) -> list[tuple[int, int, str]]:
    """Prompt timeline [(first_frame, last_frame_inclusive, caption)] for the engine."""
    return [(seg.first, seg.last, caption(seg)) for seg in spec.segments]


def random_long_video(seed: int = 0, num_frames: int | None = None,
                      num_segments: int | None = None) -> LongVideoSpec:
    """Random multi-prompt video: 64..128 frames, 2..4 segments of >= 16 frames each.

    Every boundary changes at least one of colour/shape/background (else it would not be a new
    prompt), and each segment's motion is picked among those that fit from where the object is.
    """
    rng = np.random.default_rng(seed)
    num_frames = int(rng.integers(64, 129)) if num_frames is None else num_frames
    num_segments = int(rng.integers(2, 5)) if num_segments is None else num_segments
    if num_segments < 1 or num_frames < 16 * num_segments:
        raise ValueError(f"{num_frames} frames cannot hold {num_segments} segments of at least "
                         f"16 frames each.")
    extra = rng.multinomial(num_frames - 16 * num_segments, [1 / num_segments] * num_segments)
    size = float(rng.uniform(0.2, 0.26))
    x, y = _random_start(rng, "still", size)
    state, segments, first, prev = (x, y, size), [], 0, None
    for k in range(num_segments):
        vocabs = (COLOURS, SHAPES, BACKGROUNDS)
        if prev is None:
            words = [str(rng.choice(v)) for v in vocabs]
        else:  # one guaranteed change, the others change only now and then
            forced, words = int(rng.integers(3)), list(prev)
            for j, vocab in enumerate(vocabs):
                if j == forced:
                    words[j] = str(rng.choice([v for v in vocab if v != prev[j]]))
                elif rng.random() < 0.3:
                    words[j] = str(rng.choice(vocab))
        motions = [m for m in MOTIONS if _fits(m, *state)]
        motion = str(rng.choice(motions))
        last = first + 16 + int(extra[k]) - 1
        segments.append(Segment(first, last, words[0], words[1], motion, words[2]))
        state, first, prev = _move(motion, *state, 1.0), last + 1, words
    return LongVideoSpec(tuple(segments), x, y, size, int(rng.integers(2**31)))
