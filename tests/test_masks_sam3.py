"""Mask method 'sam3': SAM 3's text-prompted video segmentation (Sam3VideoModel) on tiny random-weight models built
from configs and saved to a folder, the way the GroundingDINO + SAM 2 path is tested (issue 9)."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from genl.conditions.mask_settings import MaskSettings
from genl.conditions.masks import object_masks
from genl.conditions.sam3_text import Track, pick_tracks
from genl.conditions.tracker import NoMatch
from tiny import tiny_tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from bench_masks_sam3 import force_detections, tiny_sam3_config  # noqa: E402


def tiny_sam3_video(detect: bool):
    """Sam3VideoModel from a tiny config. `detect`: every query scores high for any prompt (random weights would
    find nothing), else every query scores ~0 (a prompt that matches nothing)."""
    from transformers import Sam3VideoModel

    torch.manual_seed(0)
    return force_detections(Sam3VideoModel(tiny_sam3_config()).eval(), detect)


@pytest.fixture(scope="module")
def sam3_folders(tmp_path_factory):
    out = {}
    for name, detect in (("sam3-tiny", True), ("sam3-blind", False)):
        folder = tmp_path_factory.mktemp("sam3") / name
        tiny_sam3_video(detect).save_pretrained(folder)
        tiny_tokenizer(32).save_pretrained(folder)
        out[name] = str(folder)
    return out


def frames_with_square(n=7, size=48):
    frames = np.zeros((n, size, size, 3), np.uint8)
    for i in range(n):
        frames[i, 10:30, 5 + i:25 + i] = (220, 30, 30)
    return frames


def test_sam3_method_gives_one_mask_per_frame_over_chunks(sam3_folders):
    frames = frames_with_square()
    settings = MaskSettings(method="sam3", detector=sam3_folders["sam3-tiny"], chunk=3, dilate=0, device="cpu")
    found = object_masks(frames, "the red square", settings=settings)
    assert found.method == "sam3" and "SAM 3" in found.note and "sam3-tiny" in found.note
    assert found.masks.shape == (7, 48, 48) and found.masks.dtype == bool
    assert all(m.any() for m in found.masks)  # every frame has a mask (its own, or a neighbour's)


def test_sam3_prompt_that_matches_nothing_says_so_with_its_best_score(sam3_folders):
    settings = MaskSettings(method="sam3", detector=sam3_folders["sam3-blind"], device="cpu")
    with pytest.raises(NoMatch, match=r"SAM 3 found no 'the purple star'.*best detection score 0\.00"):
        object_masks(frames_with_square(4), "the purple star", settings=settings)


def test_sam3_missing_model_gives_the_download_hint(monkeypatch):
    from genl.conditions import detector_models
    from genl.models import ModelNotAvailable

    monkeypatch.setattr("genl.models.hub_reachable", lambda: False)
    with pytest.raises(ModelNotAvailable, match=r"(?s)needs SAM 3.*hf download someone/sam3-not-here"):
        detector_models.load_sam3("someone/sam3-not-here", "cpu")


def _track(area: int, score: float) -> Track:
    mask = np.zeros((4, 4), bool)
    mask.flat[:area] = True
    return Track({0: mask, 1: mask}, [score, score])


def test_sam3_instance_rules_pick_among_a_chunks_tracks():
    tracks = {3: _track(2, 0.9), 5: _track(6, 0.6), 8: _track(4, 0.8)}
    pick = lambda **kw: pick_tracks(tracks, MaskSettings(**kw))  # noqa: E731
    assert pick(instance="largest") == [5]
    assert pick(instance="all") == [3, 5, 8]
    assert pick(instance="index", index=0) == [3] and pick(instance="index", index=1) == [8]
    assert pick(instance="index", index=3) == [] and pick_tracks({}, MaskSettings()) == []
