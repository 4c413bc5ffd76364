"""Object-prompted masks: GroundingDINO + SAM 2 on tiny random-weight models (built from the demo detectors'
configs, saved and loaded like real checkpoints), and the keyframe / propagation / fill logic on the shapes
world with a deterministic segmenter, whose masks we can check against the world's exact ones."""
from __future__ import annotations

import numpy as np
import torch
import pytest

from genl.conditions.detector import Detections
from genl.conditions.mask_settings import MaskSettings
from genl.conditions.masks import object_masks
from genl.conditions.tracker import fill_from_neighbours, iter_chunks, track
from genl.demo.world import ClipSpec, clip_states, render_states, states_alpha

SMALL = dict(size=64, d_model=32, queries=10, swin_dim=8, text_dim=32, sam_hidden=128, sam_dim=8)


@pytest.fixture(scope="module")
def tiny_detectors(tmp_path_factory):
    from genl.demo.detectors import DetectorConfig, build_models, save_models

    import torch

    gdino, tok, sam2 = build_models(DetectorConfig(**SMALL))
    with torch.no_grad():  # random weights would mostly say "no object here" (masks -> -1024): say "always one"
        sam2.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(10.0)
    return save_models(tmp_path_factory.mktemp("detectors"), gdino, tok, sam2)


def moving_square(frames=24, size=64):
    states = clip_states(ClipSpec("red", "square", "right", "grass", 0.3, 0.5, 0.25, seed=3), frames)
    return render_states(states, 3, size), states_alpha(states, size) > 0.5


def iou(a, b):
    return np.logical_and(a, b).sum() / max(1, np.logical_or(a, b).sum())


class OracleDetector:
    """The world's exact box on every frame but those in `miss`; counts the frames it was asked about."""

    def __init__(self, truth, miss=(), offset=0):
        self.truth, self.miss, self.calls = truth, set(miss), []
        self.frame_of = {}

    def __call__(self, frames, prompt, box_threshold, text_threshold):
        out = []
        for f in frames:
            i = next(k for k, t in enumerate(self.frames) if np.array_equal(t, f))
            self.calls.append(i)
            if i in self.miss:
                out.append(Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.1))
                continue
            ys, xs = np.nonzero(self.truth[i])
            box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
            out.append(Detections(box, np.array([0.9], np.float32), 0.9))
        return out


class ColourTracker:
    """A deterministic VideoSegmenter for flat-coloured objects: a box prompt takes the pixels of the box's
    dominant non-background colour; a step keeps the pixels of that colour within `reach` px of the last mask."""

    def __init__(self, reach=4, lose=()):
        self.reach, self.lose, self.start_frame = reach, set(lose), 0
        self.offset = 0

    def start(self, frames):
        self.frames, self.objects, self.prompts = frames.astype(int), {}, {}

    def _colour_mask(self, j, colour, region):
        return (np.abs(self.frames[j] - colour).sum(-1) < 60) & region

    def prompt_boxes(self, j, boxes, ids):
        for k, (x0, y0, x1, y1) in zip(ids, boxes.astype(int)):
            region = np.zeros(self.frames.shape[1:3], bool)
            region[y0:y1, x0:x1] = True
            colour = np.median(self.frames[j][region], axis=0)
            self.prompts[(j, k)] = (colour, self._colour_mask(j, colour, region))

    def prompt_masks(self, j, masks, ids):
        for k, m in zip(ids, masks):
            self.prompts[(j, k)] = (np.median(self.frames[j][m], axis=0), m)

    def step(self, j):
        import cv2

        ids, probs, scores = [], [], []
        for k in sorted({k for (_, k) in self.prompts} | set(self.objects)):
            if (j, k) in self.prompts:
                colour, mask = self.prompts[(j, k)]
            else:
                colour, prev = self.objects[k]
                grown = cv2.dilate(prev.astype(np.uint8), np.ones((2 * self.reach + 1,) * 2, np.uint8)) > 0
                mask = self._colour_mask(j, colour, grown)
            if (self.offset + j) in self.lose:
                mask = np.zeros_like(mask)
            self.objects[k] = (colour, mask if mask.any() else self.objects.get(k, (colour, mask))[1])
            ids.append(k)
            probs.append(mask.astype(np.float32))
            scores.append(1.0 if mask.any() else 0.0)
        return ids, np.array(probs), np.array(scores)


def run(frames, truth, detector, tracker, **kw):
    settings = MaskSettings(**{"keyframe_every": 8, "chunk": 10, "dilate": 0, "feather": 0, **kw})
    detector.frames = frames

    def chunks():
        for i, c in enumerate(iter_chunks(frames, settings.chunk)):
            tracker.offset = i * settings.chunk
            yield c

    return track(chunks(), "the red square", detector, tracker, settings)


def test_keyframes_propagate_between_detections_and_cross_chunks():
    frames, truth = moving_square()
    det = OracleDetector(truth)
    res = run(frames, truth, det, ColourTracker())
    assert sorted(set(det.calls)) == [0, 8, 16]            # only keyframes were detected
    assert res.keyframes == [0, 8, 16] and res.filled == []
    assert min(iou(m, t) for m, t in zip(res.masks, truth)) > 0.9


def test_frames_before_the_first_detection_are_filled_and_a_lost_object_is_redetected():
    frames, truth = moving_square()
    det = OracleDetector(truth, miss=(0,))
    res = run(frames, truth, det, ColourTracker(lose=(13,)), keyframe_every=4)
    assert res.keyframes[0] == 4 and res.filled[:4] == [0, 1, 2, 3]
    assert 13 in det.calls and 13 in res.keyframes           # the tracker's score dropped: re-detected there
    assert np.mean([iou(m, t) for m, t in zip(res.masks[4:], truth[4:])]) > 0.9
    assert iou(res.masks[0], truth[0]) > 0.5                  # filled from frame 4: the square moved a little


def test_fill_from_neighbours_takes_the_nearest_mask():
    a, b = np.ones((2, 2), bool), np.zeros((2, 2), bool)
    masks = [None, a, None, None, b, None]
    assert fill_from_neighbours(masks) == [0, 2, 3, 5]
    assert masks[0] is a and masks[2] is a and masks[3] is b and masks[5] is b


def test_instance_choice():
    from genl.conditions.tracker import choose

    det = Detections(np.array([[0, 0, 10, 10], [0, 0, 30, 30]], np.float32), np.array([0.9, 0.5]), 0.9)
    assert choose(det, MaskSettings(instance="largest"))[0, 2] == 30
    assert choose(det, MaskSettings(instance="index", index=0))[0, 2] == 10
    assert len(choose(det, MaskSettings(instance="all"))) == 2
    assert len(choose(det, MaskSettings(instance="index", index=5))) == 0


def test_grounding_dino_and_sam2_end_to_end(tiny_detectors, tmp_path):
    frames, _ = moving_square(frames=4, size=48)
    settings = MaskSettings(detector=tiny_detectors["detector"], tracker=tiny_detectors["tracker"], box_threshold=0.0,
                            text_threshold=0.0, redetect_below=0.0, keyframe_every=2, chunk=3, device="cpu")
    for propagate in (True, False):
        found = object_masks(frames, "the red square", settings=MaskSettings(**{**settings.__dict__,
                                                                                 "propagate": propagate}),
                             cache_dir=tmp_path)
        assert found.method == "grounded_sam2" and "GroundingDINO + SAM 2" in found.note
        assert found.masks.shape == (4, 48, 48) and found.masks.dtype == bool and found.masks.any()
        assert found.soft.shape == (4, 48, 48) and found.soft.max() <= 1.0
        assert found.keyframes[0] == 0
    again = object_masks(frames, "the red square", settings=settings, cache_dir=tmp_path)
    assert "from the mask cache" in again.note and again.masks.shape == (4, 48, 48)


def test_bundled_demo_detectors_are_picked_up_when_present(tiny_detectors, monkeypatch):
    """A training run dropped into assets/demo-detectors (config.json files present) makes the demo's masks come
    from GroundingDINO + SAM 2, the same path as a real video, instead of the colour fallback."""
    from pathlib import Path

    from genl.conditions import detector_models

    frames, _ = moving_square(frames=3, size=48)
    monkeypatch.setattr(detector_models, "DEMO_DETECTOR", tiny_detectors["detector"])
    monkeypatch.setattr(detector_models, "DEMO_TRACKER", tiny_detectors["tracker"])
    assert detector_models.demo_detectors_available()
    settings = MaskSettings(box_threshold=0.0, text_threshold=0.0, redetect_below=0.0, device="cpu")
    found = object_masks(frames, "the red square", demo=True, settings=settings)
    assert found.method == "grounded_sam2" and Path(tiny_detectors["detector"]).name in found.note
    assert found.masks.shape == (3, 48, 48) and "not bundled" not in found.note


def test_no_match_says_what_it_saw(tiny_detectors):
    frames, _ = moving_square(frames=2, size=48)
    settings = MaskSettings(detector=tiny_detectors["detector"], tracker=tiny_detectors["tracker"], box_threshold=1.0,
                            device="cpu")
    with pytest.raises(ValueError, match=r"No 'purple dog' found in the video; best score [01]\.\d\d < threshold 1\.00"):
        object_masks(frames, "purple dog", settings=settings)


def test_missing_model_gives_the_download_hint():
    from genl.conditions.detector_models import load_detector, load_tracker
    from genl.models import ModelNotAvailable

    with pytest.raises(ModelNotAvailable, match="hf download no-such-org/grounding-dino-nothing"):
        load_detector("no-such-org/grounding-dino-nothing", "cpu")
    with pytest.raises(ModelNotAvailable, match="hf download no-such-org/sam2-nothing"):
        load_tracker("no-such-org/sam2-nothing", "cpu")


def test_mask_video_round_trip_and_upload(tmp_path):
    from genl.conditions.mask_io import write_mask_video

    frames, truth = moving_square(frames=8, size=64)
    path = write_mask_video(truth, tmp_path / "masks.mp4")
    found = object_masks(frames, "", "upload", settings=MaskSettings(upload=str(path), dilate=0, feather=0))
    assert found.method == "upload" and np.mean([iou(m, t) for m, t in zip(found.masks, truth)]) > 0.9
    with pytest.raises(ValueError, match="mask video has 8 frames"):
        object_masks(np.concatenate([frames, frames]), "", "upload", settings=MaskSettings(upload=str(path)))


def test_colour_fallback_is_labelled():
    frames, truth = moving_square(frames=4)
    found = object_masks(frames, "the red square", "colour", settings=MaskSettings(dilate=0, feather=0))
    assert found.method == "colour" and "stand-in" in found.note
    assert np.mean([iou(m, t) for m, t in zip(found.masks, truth)]) > 0.8
    with pytest.raises(ValueError, match="Unknown mask method"):
        object_masks(frames, "x", "magic")


def tiny_sam3_tracker():
    """SAM 3's tracker (`Sam3TrackerVideoModel`: a ViT backbone instead of Hiera, the same session API) from a
    tiny config; hidden 128 as in the SAM 2 one (object pointers split into 64-wide memory tokens)."""
    from transformers import Sam3TrackerVideoConfig, Sam3TrackerVideoModel

    s, h = 112, 128
    cfg = Sam3TrackerVideoConfig(
        vision_config=dict(backbone_config=dict(model_type="sam3_vit_model", hidden_size=32, intermediate_size=64,
                                                num_hidden_layers=2, num_attention_heads=2, image_size=s, patch_size=14,
                                                window_size=4, global_attn_indexes=[1], pretrain_image_size=s),
                           fpn_hidden_size=h),
        prompt_encoder_config=dict(hidden_size=h, image_size=s, patch_size=14, mask_input_channels=8),
        mask_decoder_config=dict(hidden_size=h, mlp_dim=2 * h, num_attention_heads=2, iou_head_hidden_dim=h),
        memory_attention_hidden_size=h, memory_attention_num_layers=1, memory_attention_feed_forward_hidden_size=2 * h,
        memory_encoder_hidden_size=h, memory_encoder_output_channels=64, mask_downsampler_embed_dim=h,
        memory_fuser_embed_dim=h, memory_fuser_intermediate_dim=2 * h, num_maskmem=4, multimask_output_in_sam=False,
        multimask_output_for_tracking=False)
    cfg.image_size = s  # also sets the backbone's feature sizes
    torch.manual_seed(0)
    model = Sam3TrackerVideoModel(cfg)
    with torch.no_grad():  # random weights would mostly say "no object here": say "always one"
        model.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(10.0)
    return model


def test_sam3_tracker_propagates_through_the_same_session_api(tiny_detectors, tmp_path):
    """A tracker folder named sam3* loads as Sam3TrackerVideoModel and runs the keyframe/propagation path."""
    from genl.conditions.detector_models import load_tracker

    folder = tmp_path / "sam3-tracker-tiny"
    tiny_sam3_tracker().save_pretrained(folder)
    assert type(load_tracker(str(folder), "cpu").model).__name__ == "Sam3TrackerVideoModel"
    frames, _ = moving_square(frames=4, size=48)
    settings = MaskSettings(detector=tiny_detectors["detector"], tracker=str(folder), box_threshold=0.0,
                            text_threshold=0.0, redetect_below=0.0, keyframe_every=3, chunk=3, device="cpu")
    found = object_masks(frames, "the red square", settings=settings)
    assert found.method == "grounded_sam2" and "sam3-tracker-tiny" in found.note
    assert found.masks.shape == (4, 48, 48) and found.masks.any() and found.keyframes[0] == 0


def test_threshold_sweep_counts_hits_above_the_threshold_and_absent_prompts_that_pass_it():
    from genl.demo.detectors_eval import SWEEP, threshold_sweep

    present = [(0.4, True), (0.22, True), (0.3, False), (0.05, True)]
    absent = [0.1, 0.26, 0.5, 0.0]
    rows = {r["threshold"]: r for r in threshold_sweep(present, absent)}
    assert list(rows) == list(SWEEP)
    assert rows[0.2] == {"threshold": 0.2, "recall@0.5": 0.5, "false_detections": 0.5}  # 0.4 and 0.22 hit
    assert rows[0.35] == {"threshold": 0.35, "recall@0.5": 0.25, "false_detections": 0.25}
    assert rows[0.05]["recall@0.5"] == 0.75 and rows[0.05]["false_detections"] == 0.75


def test_detector_scenes_with_distractors_keep_the_named_objects_truth_and_absent_prompts_avoid_them():
    import numpy as np

    from genl.demo.detectors import absent_prompt, sample_clip, sample_scene
    from genl.demo.world import PALETTE, clip_states, states_alpha

    spec, alone, masks, boxes = sample_clip(5, 64, 4)
    spec2, video, masks2, boxes2, present = sample_scene(5, 64, 4, distractors=2)
    assert spec2 == spec and np.array_equal(masks2, masks) and np.array_equal(boxes2, boxes)
    assert len(present) == 3 and (spec.colour, spec.shape) in present
    inside = states_alpha(clip_states(spec, 4), 64) > 0.999  # away from its anti-aliased edge
    assert np.array_equal(video[inside], alone[inside])  # the named object is drawn on top, unchanged
    assert not np.array_equal(video, alone)  # the distractors are there
    others = present - {(spec.colour, spec.shape)}
    for colour, _ in others:  # each distractor's colour shows up outside the named object
        assert (np.abs(video[~masks].astype(int) - np.array(PALETTE[colour])).sum(-1) < 12).any()
    rng = np.random.default_rng(0)
    for _ in range(200):
        words = absent_prompt(spec.colour, spec.shape, rng, present).split()[1:]
        assert tuple(words) not in present


def test_detector_evaluation_writes_both_reports_with_and_without_distractors(tiny_detectors, tmp_path):
    import json
    import shutil
    from pathlib import Path

    from genl.demo.detectors_eval import SWEEP, write_report

    folder = tmp_path / "models"  # a copy: the reports are written beside the models
    shutil.copytree(Path(tiny_detectors["detector"]).parent, folder)
    plain = write_report(str(folder), videos=1, frames=3, device="cpu")
    scenes = write_report(str(folder), videos=1, frames=3, device="cpu", distractors=2)
    assert (plain["distractors"], scenes["distractors"]) == (0, 2)
    for stem in ("evaluation", "evaluation_distractors2"):
        saved = json.loads((folder / f"{stem}.json").read_text())
        assert [r["threshold"] for r in saved["threshold_sweep"]] == list(SWEEP)
        assert "other objects" in (folder / f"{stem}.md").read_text() or stem == "evaluation"
    assert 0 <= scenes["misses_propagated"] <= 1 and 0 <= scenes["top1_recall@0.5"] <= 1
    lower = write_report(str(folder), videos=1, frames=3, device="cpu", box_threshold=0.25)  # the demo's own
    assert lower["box_threshold"] == 0.25 and "box threshold 0.25" in (folder / "evaluation_box0.25.md").read_text()


def test_detector_training_gives_the_text_side_its_own_learning_rate():
    """--lr-text-scale: BERT, its projection and the text enhancer form one param group at lr x scale; every
    other trainable weight is in the other group, once."""
    import torch

    from genl.demo.detectors import DetectorConfig, TEXT_SIDE, _Budget, build_models, detector_groups

    gdino, _, _ = build_models(DetectorConfig(size=64, d_model=32, queries=10, swin_dim=8, text_dim=32))
    rest, text = detector_groups(gdino, 10.0)
    names = {id(p): n for n, p in gdino.named_parameters()}
    assert {names[id(p)].split(".")[1] for p in text["params"]} >= {"text_backbone", "text_projection"}
    assert all(any(k in names[id(p)] for k in TEXT_SIDE) for p in text["params"])
    assert not any(any(k in names[id(p)] for k in TEXT_SIDE) for p in rest["params"])
    assert len(rest["params"]) + len(text["params"]) == sum(p.requires_grad for p in gdino.parameters())
    budget = _Budget("gd", [rest, text], 1e-3, 60, 10)
    budget.update(sum(p.float().sum() for p in gdino.parameters()) * 0)
    lrs = [g["lr"] for g in budget.opt.param_groups]
    assert abs(lrs[1] / lrs[0] - 10.0) < 1e-9
