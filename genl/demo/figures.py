"""Articulated stick-figure actors for the synthetic world, with ground-truth OpenPose keypoints.

Why: pose control needs a world whose every frame has a known pose, so a demo pose ControlNet can train on
OpenPose renderings of the truth and generated figures can be scored against the driving pose. A figure is
the OpenPose 18-joint skeleton (COCO order, `genl.conditions.pose.JOINTS`) drawn as limbs of one palette
colour and a given thickness, with a round head, over `genl.demo.world`'s textured backgrounds. Motions:
walking (legs and arms swing while the figure travels), waving (right forearm swings overhead) and jumping
(two hops, knees bent on landing, arms up in the air). Everything is a pure function of the spec.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from genl.demo.world import BACKGROUNDS, COLOURS, PALETTE, background_image

FIGURE_MOTIONS = ("walk", "wave", "jump")
_MOTION_PHRASE = {"walk": "walking", "wave": "waving", "jump": "jumping"}
WALK_TRAVEL = 0.25   # walked distance over one clip, fraction of the frame width
JUMP_HOP = 0.12      # jump height, fraction of the frame height
_SS = 4              # supersampling for smooth limbs

# body proportions in units of the figure's height (head top to soles, standing)
_NECK, _NOSE, _SHOULDER, _HIP = 0.30, 0.12, 0.09, 0.055
_UPPER_ARM, _FOREARM, _THIGH, _SHIN = 0.15, 0.14, 0.23, 0.22
_HEAD_R = 0.07


@dataclass(frozen=True)
class FigureSpec:
    """One figure clip. x0, y0: the mid-hip at the first frame (0..1); height: the figure's height as a fraction
    of the frame; thickness: limb width as a fraction of the frame; direction: +1 walks right, -1 left."""
    colour: str
    motion: str
    background: str
    x0: float = 0.5
    y0: float = 0.55
    height: float = 0.6
    thickness: float = 0.04
    direction: int = 1
    seed: int = 0

    def __post_init__(self):
        for kind, value, allowed in (("colour", self.colour, COLOURS), ("motion", self.motion, FIGURE_MOTIONS),
                                     ("background", self.background, BACKGROUNDS)):
            if value not in allowed:
                raise ValueError(f"Unknown figure {kind} '{value}'. Choose one of: {', '.join(allowed)}.")
        if not 0.1 <= self.height <= 0.9:
            raise ValueError(f"Figure height must be between 0.1 and 0.9 of the frame, got {self.height}.")


def figure_caption(spec: FigureSpec) -> str:
    article = "an" if spec.colour[0] in "aeiou" else "a"
    return f"{article} {spec.colour} figure {_MOTION_PHRASE[spec.motion]} over {spec.background}"


def _limb(start, angle: float, length: float):
    """End of a limb from `start` at `angle` (radians from straight down, positive towards +x)."""
    return start[0] + length * math.sin(angle), start[1] + length * math.cos(angle)


def pose_at(spec: FigureSpec, t: float) -> np.ndarray:
    """Ground-truth keypoints (18, 2) at clip fraction t (0..1): x, y as fractions of the frame (y down).

    The figure faces the camera, so its right side (r_*) is on the image's left."""
    h, phase = spec.height, 2 * math.pi * 2 * t  # two motion cycles per clip
    x, y = spec.x0, spec.y0
    arm_r = arm_l = 0.15  # upper-arm angles outwards from hanging straight
    fore_r = fore_l = 0.0  # forearm angle relative to the upper arm
    leg_r = leg_l = 0.05
    knee_r = knee_l = 0.0
    if spec.motion == "walk":
        x += spec.direction * WALK_TRAVEL * t
        swing = 0.45 * math.sin(phase)
        leg_r, leg_l = 0.05 + swing, 0.05 - swing
        knee_r, knee_l = -0.35 * max(0.0, -math.sin(phase)), -0.35 * max(0.0, math.sin(phase))
        arm_r, arm_l = 0.15 - 0.4 * math.sin(phase), 0.15 + 0.4 * math.sin(phase)
        fore_r = fore_l = -0.2
    elif spec.motion == "wave":
        arm_r = 2.4                                  # raised, out to the side
        fore_r = 0.6 * math.sin(phase)               # forearm swings over the head
    else:  # jump: two hops; in the air arms go up, on landing the knees bend
        air = abs(math.sin(phase / 2))
        y -= JUMP_HOP * air
        arm_r = arm_l = 0.3 + 2.2 * air
        bend = 0.6 * (1 - air) ** 4
        leg_r = leg_l = 0.05 + 0.6 * bend
        knee_r = knee_l = -1.6 * bend
        y += h * (_THIGH + _SHIN) * (1 - math.cos(0.6 * bend)) * 0.8
    neck = (x, y - _NECK * h)
    nose = (x, neck[1] - _NOSE * h)
    kp = np.zeros((18, 2))
    kp[0], kp[1] = nose, neck
    for side, sign, arm, fore, leg, knee in (("r", -1, arm_r, fore_r, leg_r, knee_r),
                                             ("l", 1, arm_l, fore_l, leg_l, knee_l)):
        sh = (x + sign * _SHOULDER * h, neck[1])
        el = _limb(sh, sign * arm, _UPPER_ARM * h)
        wr = _limb(el, sign * (arm + fore), _FOREARM * h)
        hip = (x + sign * _HIP * h, y)
        kn = _limb(hip, sign * leg, _THIGH * h)
        an = _limb(kn, sign * (leg + knee), _SHIN * h)
        base = 2 if side == "r" else 5
        kp[base], kp[base + 1], kp[base + 2] = sh, el, wr
        base = 8 if side == "r" else 11
        kp[base], kp[base + 1], kp[base + 2] = hip, kn, an
    kp[14] = (nose[0] - 0.025 * h, nose[1] - 0.025 * h)  # r_eye
    kp[15] = (nose[0] + 0.025 * h, nose[1] - 0.025 * h)
    kp[16] = (nose[0] - 0.05 * h, nose[1] - 0.01 * h)    # r_ear
    kp[17] = (nose[0] + 0.05 * h, nose[1] - 0.01 * h)
    return kp


def clip_poses(spec: FigureSpec, num_frames: int = 16) -> np.ndarray:
    """Keypoints (F, 18, 2) of every frame; frame k is at t = k / num_frames."""
    if num_frames < 1:
        raise ValueError(f"A clip needs at least one frame, got {num_frames}.")
    return np.stack([pose_at(spec, k / num_frames) for k in range(num_frames)])


# the drawn skeleton: bones between joints (eyes and ears sit inside the head disc)
BONES = ((1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
         (8, 11), (1, 0))


def render_figure(background: np.ndarray, keypoints: np.ndarray, colour: str, thickness: float,
                  height: float) -> np.ndarray:
    """background (H, W, 3) uint8 with the figure drawn: anti-aliased limbs and a disc for the head."""
    size_h, size_w = background.shape[:2]
    big = np.zeros((size_h * _SS, size_w * _SS), np.uint8)
    pts = np.round(keypoints * [size_w * _SS, size_h * _SS]).astype(np.int32)
    width = max(1, int(round(thickness * size_w * _SS)))
    for a, b in BONES:
        cv2.line(big, tuple(map(int, pts[a])), tuple(map(int, pts[b])), 255, width, cv2.LINE_AA)
    head = (int(pts[0][0]), int(pts[0][1] - 0.01 * height * size_h * _SS))
    cv2.circle(big, head, int(_HEAD_R * height * size_h * _SS), 255, -1, cv2.LINE_AA)
    alpha = cv2.resize(big, (size_w, size_h), interpolation=cv2.INTER_AREA).astype(np.float32)[..., None] / 255
    mixed = background.astype(np.float32) * (1 - alpha) + np.float32(PALETTE[colour]) * alpha
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def render_figure_clip(spec: FigureSpec, num_frames: int = 16, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Frames (F, H, W, 3) uint8 and their ground-truth keypoints (F, 18, 2)."""
    poses = clip_poses(spec, num_frames)
    bg = background_image(spec.background, spec.seed, size)
    frames = np.stack([render_figure(bg, p, spec.colour, spec.thickness, spec.height) for p in poses])
    return frames, poses


def random_figure(seed) -> FigureSpec:
    """A random figure clip that stays in frame for its whole motion."""
    rng = np.random.default_rng(seed)
    motion = str(rng.choice(FIGURE_MOTIONS))
    height = float(rng.uniform(0.45, 0.7))
    direction = int(rng.choice([-1, 1]))
    travel = WALK_TRAVEL if motion == "walk" else 0.0
    margin = 0.3 * height + 0.03
    lo, hi = margin + (travel if direction < 0 else 0), 1 - margin - (travel if direction > 0 else 0)
    x0 = float(rng.uniform(lo, hi))
    top = 0.47 * height + (JUMP_HOP if motion == "jump" else 0) + 0.03  # head above the hip
    y0 = float(rng.uniform(top, 1 - 0.47 * height - 0.02))
    return FigureSpec(str(rng.choice(COLOURS)), motion, str(rng.choice(BACKGROUNDS)), x0, y0, height,
                      float(rng.uniform(0.03, 0.05)), direction, int(rng.integers(2**31)))
