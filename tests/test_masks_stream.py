"""Bounded memory on long videos: object masks read the video file chunk by chunk (VideoFrames), track chunk by
chunk, and keep finished masks as bits, so what they hold besides the result does not grow with the video's
length; and the streamed masks equal those computed from the whole video in memory, in one chunk."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from genl.conditions.detector import Detections
from genl.conditions.frames import VideoFrames, frames_hash, take
from genl.conditions.mask_settings import MaskSettings
from genl.conditions.masks import object_masks
from genl.demo.world import ClipSpec, clip_states, render_states
from genl.demo.world_parse import colour_mask
from genl.video_io import read_video, write_mp4
from test_masks import ColourTracker

SIZE = 64


class RedBoxDetector:
    """Boxes the red pixels of each frame (the shapes world's objects are flat colours); records chunk sizes."""

    def __init__(self):
        self.largest = 0

    def __call__(self, frames, prompt, box_threshold, text_threshold):
        self.largest = max(self.largest, len(frames))
        out = []
        for f in frames:
            ys, xs = np.nonzero(colour_mask(f, "red"))
            box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32) if len(xs) else \
                np.zeros((0, 4), np.float32)
            out.append(Detections(box, np.full(len(box), 0.9, np.float32), 0.9 if len(box) else 0.0))
        return out


class CountingTracker(ColourTracker):
    def __init__(self):
        super().__init__(reach=4)
        self.largest = 0

    def start(self, frames):
        self.largest = max(self.largest, len(frames))
        super().start(frames)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """The same red circle bouncing about, 96 and 384 frames at 64 px (mp4 files)."""
    folder = tmp_path_factory.mktemp("long")
    states = clip_states(ClipSpec("red", "circle", "right", "grass", 0.3, 0.5, 0.3, seed=2), 48)
    clip = render_states(states, 0, SIZE)
    loop = np.concatenate([clip, clip[::-1]])  # there and back: a video of any length
    out = {}
    for n in (96, 384):
        out[n] = write_mp4(np.concatenate([loop] * (n // len(loop))), folder / f"v{n}.mp4", fps=8)
    return out


def streamed(path, **kw):
    settings = MaskSettings(method="grounded_sam2", chunk=16, keyframe_every=8, dilate=1, feather=0.0, **kw)
    det, seg = RedBoxDetector(), CountingTracker()
    tracemalloc.start()
    found = object_masks(VideoFrames(str(path)), "the red circle", settings=settings, detector=det, tracker=seg)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return found, peak, det.largest, seg.largest


def test_long_video_masks_stream_in_chunks_with_bounded_memory(videos):
    streamed(videos[96])  # warm up: first-call imports would count as memory held
    short, peak_short, *_ = streamed(videos[96])
    long, peak_long, det_frames, seg_frames = streamed(videos[384])
    assert det_frames <= 16 and seg_frames <= 16          # no stage ever saw more than one chunk
    assert long.masks.shape == (384, SIZE, SIZE)
    # Besides the result (masks + their dilated copy, 2 bytes a pixel), what the run held stays put when the
    # video grows 4x; holding the video would add >= 3 bytes a pixel per extra frame (12 as float32).
    extra = lambda found, peak: peak - 2 * found.masks.nbytes  # noqa: E731
    frame_bytes = SIZE * SIZE * 3
    assert extra(long, peak_long) < extra(short, peak_short) + 0.1 * 288 * frame_bytes, (peak_short, peak_long)
    assert extra(long, peak_long) < 16 * frame_bytes * 10  # ~ one chunk: decoded + the test tracker's int64 copy

    whole, _ = read_video(videos[384])
    in_memory = object_masks(whole, "the red circle", detector=RedBoxDetector(), tracker=CountingTracker(),
                             settings=MaskSettings(method="grounded_sam2", chunk=len(whole), keyframe_every=8,
                                                   dilate=1, feather=0.0))
    assert np.array_equal(long.masks, in_memory.masks)
    assert long.keyframes == in_memory.keyframes and long.masks.mean() > 0.02


def test_streamed_frames_hash_and_take_match_the_array(videos):
    whole, _ = read_video(videos[96])
    source = VideoFrames(str(videos[96]))
    assert frames_hash(source) == frames_hash(whole)   # so a preview (streamed) and an edit (array) share masks
    assert np.array_equal(take(source, [0, 50, 95]), whole[[0, 50, 95]])
