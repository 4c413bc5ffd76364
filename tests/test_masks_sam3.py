"""Mask method 'sam3': SAM 3's text-prompted video segmentation (Sam3VideoModel) on tiny random-weight models built
from configs and saved to a folder, the way the GroundingDINO + SAM 2 path is tested (issue 9)."""
import numpy as np
import pytest
import torch

from genl.conditions.mask_settings import MaskSettings
from genl.conditions.masks import object_masks
from genl.conditions.sam3_text import Track, pick_tracks
from genl.conditions.tracker import NoMatch
from tiny import tiny_tokenizer

S, H = 112, 128  # frame size of the tiny model (patch 14) and its hidden size (SAM trackers split 64-wide tokens)


def tiny_sam3_video(detect: bool):
    """Sam3VideoModel from a tiny config. `detect`: every query scores high for any prompt (random weights would
    find nothing), else every query scores ~0 (a prompt that matches nothing)."""
    from transformers import Sam3VideoConfig, Sam3VideoModel

    vit = dict(model_type="sam3_vit_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=2, image_size=S, patch_size=14, window_size=4, global_attn_indexes=[1],
               pretrain_image_size=S)
    small = dict(hidden_size=H, num_layers=1, num_attention_heads=2, intermediate_size=2 * H)
    detector = dict(vision_config=dict(backbone_config=vit, fpn_hidden_size=H),
                    text_config=dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                     num_attention_heads=2, projection_dim=H, max_position_embeddings=32,
                                     bos_token_id=2, eos_token_id=3, pad_token_id=0),
                    geometry_encoder_config=dict(small), detr_encoder_config=dict(small),
                    detr_decoder_config=dict(small, num_queries=6),
                    mask_decoder_config=dict(hidden_size=H, num_attention_heads=2))
    tracker = dict(vision_config=dict(backbone_config=vit, fpn_hidden_size=H),
                   prompt_encoder_config=dict(hidden_size=H, image_size=S, patch_size=14, mask_input_channels=8),
                   mask_decoder_config=dict(hidden_size=H, mlp_dim=2 * H, num_attention_heads=2, iou_head_hidden_dim=H),
                   memory_attention_hidden_size=H, memory_attention_num_layers=1,
                   memory_attention_feed_forward_hidden_size=2 * H, memory_encoder_hidden_size=H,
                   memory_encoder_output_channels=64, mask_downsampler_embed_dim=H, memory_fuser_embed_dim=H,
                   memory_fuser_intermediate_dim=2 * H, num_maskmem=4)
    cfg = Sam3VideoConfig(detector_config=detector, tracker_config=tracker, hotstart_delay=2,
                          hotstart_unmatch_thresh=2, hotstart_dup_thresh=2, low_res_mask_size=28)
    cfg.image_size = S
    torch.manual_seed(0)
    model = Sam3VideoModel(cfg).eval()
    scoring = model.detector_model.dot_product_scoring
    with torch.no_grad():
        for proj in (scoring.query_proj, scoring.text_proj):  # class score = a fixed large (or zero) dot product
            proj.weight.zero_()
            proj.bias.fill_(1.0 if detect else 0.0)
        presence = model.detector_model.detr_decoder.presence_head.layer3
        presence.bias.fill_(10.0 if detect else -10.0)
        model.tracker_model.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(10.0)
    return model


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
