"""OpenPose hands and face: drawing byte-identical to controlnet_aux's, the hand/face peak searches, and the
body+hands(+face) detector over a video on random-weight networks (offline)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from genl.conditions.pose import OpenPose, _openpose_modules
from genl.conditions.pose_parts import (draw_face, draw_hand, draw_people, face_network, face_peaks, hand_network,
                                        hand_peaks, to_fractions)


def _keypoints(points, body_mod):
    """Our (K, 2) array (NaN = missing) -> controlnet_aux Keypoints (it marks a missing one with x, y < 0)."""
    return [body_mod.Keypoint(-0.01, -0.01) if np.isnan(p).any() else body_mod.Keypoint(float(p[0]), float(p[1]))
            for p in points]


def test_hand_and_face_drawing_is_controlnet_aux_byte_for_byte():
    pytest.importorskip("matplotlib")  # controlnet_aux's draw_handpose takes its colours from matplotlib
    body_mod, _, util = _openpose_modules()
    rng = np.random.default_rng(3)
    hand = rng.uniform(0.1, 0.9, (21, 2)).astype(np.float32)
    hand[7] = np.nan  # a finger joint not found: its bones and disc are left out
    face = rng.uniform(0.2, 0.8, (40, 2)).astype(np.float32)
    face[3] = np.nan
    ours = draw_face(draw_hand(np.zeros((96, 128, 3), np.uint8), hand), face)
    theirs = util.draw_facepose(util.draw_handpose(np.zeros((96, 128, 3), np.uint8), _keypoints(hand, body_mod)),
                                _keypoints(face, body_mod))
    assert ours.any() and (ours == theirs).all()
    assert (ours == [255, 255, 255]).all(-1).any() and (ours == [0, 0, 255]).all(-1).any()

    # a whole person: body, both hands, face, in the order of controlnet_aux's draw_poses
    body = rng.uniform(0.1, 0.9, (18, 2))
    person = {"body": body, "left_hand": hand, "right_hand": hand[::-1].copy(), "face": face}
    canvas = np.zeros((96, 128, 3), np.uint8)
    util.draw_bodypose(canvas, [body_mod.Keypoint(*p) for p in body])
    for part in (hand, hand[::-1]):
        util.draw_handpose(canvas, _keypoints(part, body_mod))
    util.draw_facepose(canvas, _keypoints(face, body_mod))
    assert (draw_people([person], 96, 128) == canvas).all()


class _PeakNet(torch.nn.Module):
    """A hand network whose heatmaps (22 channels, stride 8) peak at one known spot per part: part k at
    column k of a 21-column grid along the middle row, so the peak search must find each where it was put."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()), requires_grad=False)

    def forward(self, x):
        h, w = x.shape[2] // 8, x.shape[3] // 8
        out = torch.zeros(len(x), 22, h, w)
        for k in range(21):
            out[:, k, h // 2, round((k + 0.5) * w / 21)] = 1.0
        return out


def test_hand_peaks_are_found_where_the_heatmaps_put_them():
    crops = [np.zeros((84, 84, 3), np.uint8), np.zeros((42, 42, 3), np.uint8)]
    peaks = hand_peaks(_PeakNet(), crops, box=336, scales=(1.0,), batch_size=1)
    assert [p.shape for p in peaks] == [(21, 2), (21, 2)]
    for crop, p in zip(crops, peaks):
        side = crop.shape[0]
        want_x = np.array([round((k + 0.5) * 42 / 21) * 8 + 4 for k in range(21)]) * side / 336
        assert np.abs(p[:, 0] - want_x).max() <= side / 128 * 3 + 1  # within a few cells of the 128 px grid
        assert np.abs(p[:, 1] - side / 2).max() <= side / 128 * 3 + 1
    frac = to_fractions(np.array([[0, 5], [10, 20]]), 30, 40, 100, 200)
    assert np.isnan(frac[0, 0]) and np.isclose(frac[0, 1], 45 / 200) and np.allclose(frac[1], [0.4, 0.3])


def test_real_hand_and_face_networks_random_weights_tiny_inputs():
    torch.manual_seed(0)
    crops = [np.random.default_rng(i).integers(0, 255, (s, s, 3), dtype=np.uint8) for i, s in enumerate((30, 52))]
    hands = hand_peaks(hand_network(), crops, box=32, scales=(0.5, 1.0), batch_size=2)
    assert all(p.shape == (21, 2) and (p >= 0).all() and (p < len(c)).all() for p, c in zip(hands, crops))
    faces = face_peaks(face_network(), crops, size=32, batch_size=2)
    assert all(p.ndim == 2 and p.shape[1] == 2 and (p < len(c)).all() for p, c in zip(faces, crops))


class _TinyBodyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = torch.nn.Conv2d(3, 57, 8, stride=8)

    def forward(self, x):
        y = torch.sigmoid(self.conv(x))
        return y[:, :38], y[:, 38:] * 0.5


class _TinyHandNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 22, 8, stride=8)

    def forward(self, x):
        return torch.sigmoid(self.conv(x))


class _TinyFaceNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 71, 8, stride=8)

    def forward(self, x):
        return [torch.sigmoid(self.conv(x))]


def test_body_hands_face_detector_maps_every_frame():
    frames = np.random.default_rng(0).integers(0, 255, (3, 48, 64, 3), dtype=np.uint8)
    det = OpenPose(_TinyBodyNet(), batch_size=2, input_height=48, hand_model=_TinyHandNet(),
                   face_model=_TinyFaceNet(), hand_box=32, hand_scales=(1.0,), face_size=32)
    assert det.name == "openpose_full"
    people = det.people(frames)
    assert len(people) == 3
    for frame_people in people:
        for person in frame_people:
            assert person["body"].shape == (18, 2)
            for slot in ("left_hand", "right_hand"):
                assert person[slot] is None or person[slot].shape == (21, 2)
    found = [p[s] is not None for f in people for p in f for s in ("left_hand", "right_hand", "face")]
    assert sum(found[0::3]) + sum(found[1::3]) > 0 and sum(found[2::3]) > 0  # the random body net finds some
    maps = det(frames)
    assert maps.shape == frames.shape and maps.dtype == np.uint8
    assert (maps == [0, 0, 255]).all(-1).any() and (maps == [255, 255, 255]).all(-1).any()  # hand, face discs
    with pytest.raises(ValueError, match="hand network"):
        OpenPose(_TinyBodyNet(), face_model=_TinyFaceNet())


def test_hand_and_face_modes_load_offline_with_the_download_hint(tmp_path, monkeypatch):
    from genl.models import ModelNotAvailable

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "body_pose_model.pth").write_bytes(b"")  # every file is looked for before any is read
    with pytest.raises((ModelNotAvailable, ValueError), match="hand_pose_model.pth"):
        OpenPose.load(str(tmp_path), mode="openpose_hand")
    with pytest.raises(ValueError, match="Unknown OpenPose mode"):
        OpenPose.load(str(tmp_path), mode="hands")
