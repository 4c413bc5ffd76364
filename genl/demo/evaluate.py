"""Prompt fidelity of generated videos as read back by `genl.demo.world_parse.parse_frame`.

Each test video has two segments with random captions ("0-15: a red circle ... | 16-31: a blue star ...");
a frame counts as right for colour / shape / background when the parser reads what its segment asked for.
"""
from __future__ import annotations

import time

import numpy as np

from genl.demo.world import caption, parse_caption, random_clip
from genl.demo.world_parse import parse_frame


def frame_scores(frames: np.ndarray, segments: list[tuple[int, int, str]]) -> dict[str, list[bool]]:
    """Per frame, whether parse_frame's colour, shape and background match the frame's segment prompt."""
    out = {"colour": [], "shape": [], "background": []}
    for first, last, text in segments:
        want = parse_caption(text)
        for frame in frames[first:last + 1]:
            got = parse_frame(frame)
            for key in out:
                out[key].append(getattr(got, key) == want[key])
    return out


def two_segment_prompt(seed: int, num_frames: int) -> list[tuple[int, int, str]]:
    half = num_frames // 2
    rng = np.random.default_rng(seed)
    a, b = random_clip(rng), random_clip(rng)
    return [(0, half - 1, caption(a)), (half, num_frames - 1, caption(b))]


def evaluate(model: str = "demo", pipelines=("animatediff", "tuning_free"), captions: int = 10,
             num_frames: int = 32, steps: int = 20, size: int = 128, seed: int = 0, clip_length: int = 16,
             stride: int = 8, guidance: float = 7.5) -> dict:
    from genl.models import ModelManager
    from genl.timeline import load_timeline
    from genl.settings import CoDenoiseSettings

    manager, report = ModelManager(), {}
    for name in pipelines:
        pipe = manager.get(name, model, device="cpu")
        scores = {"colour": [], "shape": [], "background": []}
        t0 = time.time()
        for i in range(captions):
            segments = two_segment_prompt(seed + i, num_frames)
            prompt = " | ".join(f"{a}-{b}: {text}" for a, b, text in segments)
            frames = pipe(load_timeline(prompt), num_frames=num_frames, height=size, width=size,
                          num_inference_steps=steps, guidance_scale=guidance, codenoise=CoDenoiseSettings(clip_length=clip_length, stride=stride),
                          seed=seed + i).frames
            for key, hits in frame_scores(np.asarray(frames), segments).items():
                scores[key] += hits
        report[name] = {k: round(float(np.mean(v)), 3) for k, v in scores.items()}
        report[name]["videos"] = captions
        report[name]["seconds"] = round(time.time() - t0, 1)
    return report
