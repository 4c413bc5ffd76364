"""Timelines -> per-window / per-frame text conditions, with interpolation values checked by hand."""
import json

import pytest
import torch

from genl.codenoise import make_windows
from genl.timeline import Segment, Timeline, load_timeline, mix_embeddings, seconds_to_frame, slerp


def test_parse_text_form():
    tl = Timeline.parse("0-47: a jeep on the beach, sunny | 48-95: the jeep at night --neg blurry, dark")
    assert tl.segments == [Segment(0, 47, "a jeep on the beach, sunny"),
                           Segment(48, 95, "the jeep at night", "blurry, dark")]
    assert Timeline.parse("a cat").validate(10).segments == [Segment(0, 9, "a cat")]
    keys = Timeline.parse("0: a cat | 64: a dog")
    assert keys.keyframes == {0: ("a cat", ""), 64: ("a dog", "")}


def test_json_forms(tmp_path):
    data = {"segments": [{"start": 0, "end": 9, "prompt": "a"}, {"start": 10, "end": 19, "prompt": "b",
                                                                   "negative": "n"}]}
    p = tmp_path / "t.json"
    p.write_text(json.dumps(data))
    tl = load_timeline(str(p)).validate(20)
    assert tl.segments[1] == Segment(10, 19, "b", "n")
    assert Timeline.from_json(tl.to_json()).segments == tl.segments
    keys = Timeline.from_json({"keyframes": {"0": "a cat", "30": {"prompt": "a dog"}}})
    assert keys.validate(31).keyframes == {0: ("a cat", ""), 30: ("a dog", "")}
    assert load_timeline(json.dumps(data)).validate(20).segments == tl.segments


@pytest.mark.parametrize("text,n,message", [
    ("0-40: a | 48-95: b", 96, "Frames 41-47 have no prompt"),
    ("0-10: a | 12-23: b", 24, "Frame 11 has no prompt"),
    ("0-50: a | 48-95: b", 96, "overlaps"),
    ("0-47: a | 48-99: b", 96, "past the end"),
    ("0-47: a | 48-90: b", 96, "stops early"),
    ("0-47: a | 48-95:   ", 96, "empty"),
    ("", 96, "empty"),
    ("10-47: a | 48-95: b", 96, "Frames 0-9 have no prompt"),
    ("0: a | 120: b", 96, "outside the video"),
    ("0-47: a | 50: b", 96, "either"),
    ("0-47: a | zero to ten: b", 96, "Could not read"),
    ("5-2: a", 96, "ends before it starts"),
])
def test_errors_are_clear(text, n, message):
    with pytest.raises(ValueError, match=message):
        load_timeline(text).validate(n)


def test_rows_from_table_editor():
    tl = Timeline.from_rows([[0, 9, "a cat", ""], ["10", "19.0", "a dog", None]]).validate(20)
    assert tl.segments == [Segment(0, 9, "a cat"), Segment(10, 19, "a dog")]
    with pytest.raises(ValueError, match="negative"):
        Timeline.from_rows([[0, -5, "x"]])
    assert seconds_to_frame(2.0, 8) == 16


def test_window_weights_by_share_of_frames():
    tl = Timeline.parse("0-47: a | 48-95: b")
    windows = make_windows(96, 16, 8)
    w = tl.clip_prompt_mix(windows, 96)
    assert w.shape == (len(windows), 2)
    rows = dict(zip(windows, w.tolist()))
    assert rows[(0, 16)] == [1.0, 0.0]
    assert rows[(40, 56)] == pytest.approx([0.5, 0.5])  # 8 frames on each side of the change
    assert rows[(32, 48)] == [1.0, 0.0] and rows[(48, 64)] == [0.0, 1.0]
    assert tl.clip_prompt_mix([(44, 60)], 96)[0].tolist() == pytest.approx([0.25, 0.75])


def test_keyframe_interpolation_by_hand():
    tl = Timeline.parse("0: a | 64: b | 96: c")
    f = tl.frame_prompt_mix(97)
    assert f[0].tolist() == [1, 0, 0] and f[64].tolist() == [0, 1, 0] and f[96].tolist() == [0, 0, 1]
    assert f[16].tolist() == pytest.approx([0.75, 0.25, 0.0])
    assert f[80].tolist() == pytest.approx([0.0, 0.5, 0.5])
    w = tl.clip_prompt_mix([(8, 24)], 97)  # centre 15.5: the paper's (k-j)/k, j/k
    assert w[0].tolist() == pytest.approx([1 - 15.5 / 64, 15.5 / 64, 0.0])


def test_frame_prompt_mix_segments_and_transition():
    tl = Timeline.parse("0-9: a | 10-19: b")
    hard = tl.frame_prompt_mix(20)
    assert hard[9].tolist() == [1, 0] and hard[10].tolist() == [0, 1]
    soft = tl.frame_prompt_mix(20, transition=4)  # 5-frame box blur around the change
    assert soft[9].tolist() == pytest.approx([0.6, 0.4]) and soft[10].tolist() == pytest.approx([0.4, 0.6])
    assert soft[0].tolist() == [1, 0] and torch.allclose(soft.sum(1), torch.ones(20))


def test_same_prompt_in_two_segments_is_encoded_once():
    tl = Timeline.parse("0-9: a | 10-19: b | 20-29: a")
    assert tl.prompts() == [("a", ""), ("b", "")]
    assert tl.frame_prompt_mix(30)[25].tolist() == [1, 0]


def test_mix_linear_and_slerp():
    emb = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # P=2, tokens=1, dim=2
    w = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.25, 0.75]])
    lin = mix_embeddings(emb, w, "linear")
    assert lin[1, 0].tolist() == pytest.approx([0.5, 0.5]) and lin[2, 0].tolist() == pytest.approx([0.25, 0.75])
    sl = mix_embeddings(emb, w, "slerp")
    assert sl[0, 0].tolist() == pytest.approx([1.0, 0.0])
    half = 2 ** -0.5
    assert sl[1, 0].tolist() == pytest.approx([half, half], abs=1e-6)  # norm kept at 1
    assert sl[2, 0].norm().item() == pytest.approx(1.0, abs=1e-6)
    a = torch.randn(4, 8)
    assert torch.allclose(slerp(a, a, 0.3), a, atol=1e-6)
    with pytest.raises(ValueError):
        mix_embeddings(emb, w, "cubic")
