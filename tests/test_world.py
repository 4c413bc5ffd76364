"""Tests of the synthetic shapes world (genl.demo.world) and its frame parser (genl.demo.world_parse)."""
import itertools

import numpy as np
import pytest

from genl.demo import world
from genl.demo.world import (BACKGROUNDS, COLOURS, MOTIONS, SHAPES, ClipSpec, LongVideoSpec, Segment,
                        background_image, caption, clip_states, long_video_states,
                        long_video_timeline, parse_caption, random_clip, random_long_video,
                        render_clip, render_long_video, render_states, states_alpha)
from genl.demo.world_parse import (colour_mask, degrade, object_mask, parse_accuracy, parse_frame,
                              true_centroid)

SIZES = (64, 128, 256)


# ---------------------------------------------------------------- vocabulary and captions

def test_vocabulary_is_big_enough():
    assert len(COLOURS) >= 6 and len(SHAPES) >= 4 and len(BACKGROUNDS) >= 5
    assert set(MOTIONS) == {"left", "right", "up", "down", "bounce", "still", "grow"}


def test_caption_grammar():
    spec = ClipSpec("red", "circle", "right", "grass")
    assert caption(spec) == "a red circle moving right over grass"
    assert caption(ClipSpec("red", "circle", "still", "grass")) == "a red circle staying still over grass"
    assert caption(ClipSpec("orange", "star", "bounce", "sky")) == "an orange star bouncing over sky"
    assert caption(ClipSpec("blue", "square", "grow", "snow")) == "a blue square growing over snow"


def test_every_caption_round_trips():
    for colour, shape, motion, background in itertools.product(COLOURS, SHAPES, MOTIONS, BACKGROUNDS):
        text = caption(ClipSpec(colour, shape, motion, background))
        assert parse_caption(text) == {"colour": colour, "shape": shape, "motion": motion,
                                       "background": background}


def test_parse_caption_tolerates_case_and_punctuation():
    assert parse_caption("A Red circle, moving RIGHT over grass.") == {
        "colour": "red", "shape": "circle", "motion": "right", "background": "grass"}


@pytest.mark.parametrize("text", ["a green circle moving right over grass",   # unknown colour
                                  "a red circle over grass",                   # no motion
                                  "a red blue circle moving up over sand",     # two colours
                                  "a cat sleeping on a sofa"])
def test_parse_caption_rejects_text_outside_the_vocabulary(text):
    with pytest.raises(ValueError):
        parse_caption(text)


def test_specs_reject_bad_values():
    with pytest.raises(ValueError, match="colour"):
        ClipSpec("green", "circle", "right", "grass")
    with pytest.raises(ValueError, match="size"):
        ClipSpec("red", "circle", "right", "grass", size=0.9)
    with pytest.raises(ValueError, match="gaps"):
        LongVideoSpec((Segment(0, 9, "red", "circle", "still", "sky"),
                       Segment(11, 20, "red", "star", "still", "sky")))


# ---------------------------------------------------------------- rendering

@pytest.mark.parametrize("size", SIZES)
def test_rendering_is_deterministic(size):
    spec = random_clip(7)
    assert random_clip(7) == spec
    a, b = render_clip(spec, 8, size), render_clip(spec, 8, size)
    assert a.shape == (8, size, size, 3) and a.dtype == np.uint8
    assert a.tobytes() == b.tobytes()
    assert render_clip(random_clip(8), 8, size).tobytes() != a.tobytes()
    assert not np.array_equal(background_image("sand", 1, size), background_image("sand", 2, size))


def test_backgrounds_are_textured():
    for name in BACKGROUNDS:
        img = background_image(name, 0, 128).astype(np.float32)
        assert img.std(axis=(0, 1)).max() > 3, name  # not a flat fill


def test_motions_do_what_they_say():
    base = dict(colour="red", shape="square", background="grass", x0=0.5, y0=0.5, size=0.25)
    path = {m: clip_states(ClipSpec(motion=m, **base), 16) for m in MOTIONS}
    xs = {m: np.array([s.x for s in p]) for m, p in path.items()}
    ys = {m: np.array([s.y for s in p]) for m, p in path.items()}
    assert np.all(np.diff(xs["right"]) > 0) and np.all(np.diff(xs["left"]) < 0)
    assert np.all(np.diff(ys["down"]) > 0) and np.all(np.diff(ys["up"]) < 0)
    assert np.ptp(xs["still"]) == np.ptp(ys["still"]) == 0
    assert ys["bounce"].min() < 0.5 - 0.2 and ys["bounce"].max() <= 0.5
    assert np.all(np.diff([s.size for s in path["grow"]]) > 0)


def test_random_clips_move_smoothly_and_stay_in_frame():
    for seed in range(100):
        states = clip_states(random_clip(seed), 16)
        for s in states:
            assert s.size / 2 <= s.x <= 1 - s.size / 2 and s.size / 2 <= s.y <= 1 - s.size / 2
        steps = np.hypot(np.diff([s.x for s in states]), np.diff([s.y for s in states]))
        assert steps.max() < 0.1


def test_rendered_motion_is_visible_to_the_parser():
    spec = ClipSpec("yellow", "circle", "right", "night", x0=0.3, y0=0.5, size=0.25)
    frames = render_clip(spec, 16, 128)
    xs = [parse_frame(f).x for f in frames]
    assert np.all(np.diff(xs) > 0) and xs[-1] - xs[0] > 0.25


# ---------------------------------------------------------------- parser

@pytest.mark.parametrize("size", SIZES)
def test_parser_accuracy_on_clean_frames(size):
    result = parse_accuracy(n_clips=200, seed=size, size=size)
    assert result["colour"] >= 0.98 and result["shape"] >= 0.98 and result["background"] >= 0.98, result
    assert result["position_error"] < 0.01 and result["position_error_max"] < 0.03, result


@pytest.mark.parametrize("size", SIZES)
def test_parser_is_robust_to_blur_and_noise(size):
    result = parse_accuracy(n_clips=150, seed=size + 1, size=size, blur_sigma=1.0, noise_std=6.0)
    assert result["colour"] >= 0.95 and result["shape"] >= 0.95 and result["background"] >= 0.95, result
    assert result["position_error"] < 0.03, result


def test_parser_reports_size_as_area_fraction():
    state = clip_states(ClipSpec("pink", "square", "still", "sand", size=0.3), 1)
    got = parse_frame(render_states(state, 0, 128)[0])
    assert got.size == pytest.approx(0.09, abs=0.01)
    assert got.confidence > 0.8


def test_parser_finds_no_object_on_bare_backgrounds():
    for name in BACKGROUNDS:
        for frame in (background_image(name, 3, 128), degrade(background_image(name, 3, 128), 1, 6)):
            got = parse_frame(frame)
            assert got.background == name
            assert got.colour is got.shape is got.x is got.y is got.size is None
            assert got.confidence == 0.0
            assert not object_mask(frame).any()


def test_parser_rejects_non_images():
    with pytest.raises(ValueError, match="RGB"):
        parse_frame(np.zeros((32, 32), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        parse_frame(np.zeros((32, 32, 3), np.float32))


@pytest.mark.parametrize("size", SIZES)
def test_colour_mask_matches_the_true_object(size):
    rng = np.random.default_rng(size)
    ious = []
    for i in range(40):
        spec = random_clip(rng)
        state = clip_states(spec, 8)[i % 8]
        frame = render_states([state], spec.seed, size)[0]
        truth = states_alpha([state], size)[0] >= 0.5
        for seen in (frame, degrade(frame, 1.0, 6.0, seed=i)):
            mask = colour_mask(seen, state.colour)
            ious.append((mask & truth).sum() / (mask | truth).sum())
        assert np.array_equal(object_mask(frame), colour_mask(frame, state.colour))
        other = COLOURS[(COLOURS.index(state.colour) + 1) % len(COLOURS)]
        assert not colour_mask(frame, other).any()
    assert np.mean(ious) > 0.95 and np.min(ious) > 0.75


def test_colour_mask_rejects_unknown_colours():
    with pytest.raises(ValueError, match="colour"):
        colour_mask(background_image("sky", 0, 64), "green")


def test_true_centroid_of_a_centred_square():
    alpha = states_alpha(clip_states(ClipSpec("red", "square", "still", "sky"), 1), 128)[0]
    assert true_centroid(alpha) == pytest.approx((0.5, 0.5), abs=1e-3)


# ---------------------------------------------------------------- multi-prompt long videos

@pytest.mark.parametrize("seed", range(6))
def test_random_long_video_timeline_covers_every_frame(seed):
    spec = random_long_video(seed)
    assert 64 <= spec.num_frames <= 128 and 2 <= len(spec.segments) <= 4
    timeline = long_video_timeline(spec)
    covered = [f for first, last, _ in timeline for f in range(first, last + 1)]
    assert covered == list(range(spec.num_frames))  # no gaps, no overlaps, in order
    for (first, last, text), seg in zip(timeline, spec.segments):
        assert last - first + 1 >= 16
        assert parse_caption(text) == {"colour": seg.colour, "shape": seg.shape,
                                       "motion": seg.motion, "background": seg.background}
    assert random_long_video(seed) == spec


@pytest.mark.parametrize("seed", range(6))
def test_long_video_segments_change_what_they_say_over_a_continuous_path(seed):
    spec = random_long_video(seed)
    states = long_video_states(spec)
    frames = render_long_video(spec, size=128)
    assert frames.shape == (spec.num_frames, 128, 128, 3)
    assert render_long_video(spec, size=128).tobytes() == frames.tobytes()
    steps = np.abs(np.diff([[s.x, s.y, s.size] for s in states], axis=0))
    inside = [f for f in range(len(states) - 1) if f not in {seg.last for seg in spec.segments}]
    for before, after in zip(spec.segments, spec.segments[1:]):
        changed = [k for k in ("colour", "shape", "background") if getattr(before, k) != getattr(after, k)]
        assert changed, "every boundary must change the prompt"
        # Continuity: the jump across a boundary is no bigger than an ordinary step.
        assert np.all(steps[before.last] <= steps[inside].max(axis=0) + 1e-9)
        for seg, frame in ((before, frames[before.last]), (after, frames[after.first])):
            got = parse_frame(frame)
            assert (got.colour, got.shape, got.background) == (seg.colour, seg.shape, seg.background)


def test_long_video_motions_fit_in_frame():
    for seed in range(30):
        for s in long_video_states(random_long_video(seed)):
            half = s.size / 2 + world.MARGIN - 1e-9
            assert half <= s.x <= 1 - half and half <= s.y <= 1 - half


def test_random_long_video_rejects_impossible_requests():
    with pytest.raises(ValueError, match="segments"):
        random_long_video(0, num_frames=40, num_segments=4)
