"""Mask method 'sam3' at real size: the facebook/sam3 architecture (`Sam3VideoConfig()` defaults: ViT-L-sized
backbone at 1008 px, CLIP text encoder, DETR detector, SAM 2-style tracker) with random weights over a
128-frame 512x512 video: seconds, seconds per frame and peak memory.

    python bench/bench_masks_sam3.py --out bench/results            # GPU, fp16
    python bench/bench_masks_sam3.py --smoke --out bench/results    # tiny config on the CPU: checks the script

Random weights find nothing, so `force_detections` biases the class, presence and object-score heads: every
query then scores ~1, SAM 3's own NMS keeps the non-overlapping ones, and the tracker runs on what it keeps. The
number of tracks is reported, since the work grows with it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genl.conditions.mask_settings import MaskSettings  # noqa: E402
from genl.conditions.masks import object_masks  # noqa: E402
from genl.conditions.sam3_text import Sam3TextSegmenter  # noqa: E402
from genl.demo.world import ClipSpec, render_clip  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_masks import run_meta  # noqa: E402


def tiny_sam3_config(size: int = 112, hidden: int = 128, hotstart: int = 2):
    """A Sam3VideoConfig of a few MB (patch 14; hidden 128: SAM trackers split object pointers into 64-wide
    memory tokens), for CPU tests and the smoke run."""
    from transformers import Sam3VideoConfig

    h = hidden
    vit = dict(model_type="sam3_vit_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=2, image_size=size, patch_size=14, window_size=4, global_attn_indexes=[1],
               pretrain_image_size=size)
    small = dict(hidden_size=h, num_layers=1, num_attention_heads=2, intermediate_size=2 * h)
    detector = dict(vision_config=dict(backbone_config=vit, fpn_hidden_size=h),
                    text_config=dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                     num_attention_heads=2, projection_dim=h, max_position_embeddings=32,
                                     bos_token_id=2, eos_token_id=3, pad_token_id=0),
                    geometry_encoder_config=dict(small), detr_encoder_config=dict(small),
                    detr_decoder_config=dict(small, num_queries=6),
                    mask_decoder_config=dict(hidden_size=h, num_attention_heads=2))
    tracker = dict(vision_config=dict(backbone_config=vit, fpn_hidden_size=h),
                   prompt_encoder_config=dict(hidden_size=h, image_size=size, patch_size=14, mask_input_channels=8),
                   mask_decoder_config=dict(hidden_size=h, mlp_dim=2 * h, num_attention_heads=2, iou_head_hidden_dim=h),
                   memory_attention_hidden_size=h, memory_attention_num_layers=1,
                   memory_attention_feed_forward_hidden_size=2 * h, memory_encoder_hidden_size=h,
                   memory_encoder_output_channels=64, mask_downsampler_embed_dim=h, memory_fuser_embed_dim=h,
                   memory_fuser_intermediate_dim=2 * h, num_maskmem=4)
    cfg = Sam3VideoConfig(detector_config=detector, tracker_config=tracker, hotstart_delay=hotstart,
                          hotstart_unmatch_thresh=hotstart, hotstart_dup_thresh=hotstart, low_res_mask_size=28)
    cfg.image_size = size
    return cfg


def force_detections(model, detect: bool = True):
    """Random weights detect nothing: make every query score ~1 for any prompt (detect) or ~0 (a prompt that
    matches nothing), and the tracker always say "object present"."""
    scoring = model.detector_model.dot_product_scoring
    with torch.no_grad():
        for proj in (scoring.query_proj, scoring.text_proj):
            proj.weight.zero_()
            proj.bias.fill_(1.0 if detect else 0.0)
        model.detector_model.detr_decoder.presence_head.layer3.bias.fill_(10.0 if detect else -10.0)
        model.tracker_model.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(10.0)
    return model


def word_tokenizer(vocab_size: int, max_length: int = 32):
    """A word-level tokenizer for the bench prompt (SAM 3's CLIP tokenizer cannot be downloaded here; the text
    encoder's work depends only on the 32 padded tokens)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<unk>": 1, "<bos>": 2, "<eos>": 3, "the": 4, "red": 5, "circle": 6}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    assert max(vocab.values()) < vocab_size
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=max_length, pad_token="<pad>",
                                   unk_token="<unk>", bos_token="<bos>", eos_token="<eos>")


class TrackCount:
    """Counts the distinct SAM 3 tracks `chunk_tracks` returns (the work grows with them)."""

    def __init__(self, fn):
        self.fn, self.ids, self.chunks = fn, 0, 0

    def __call__(self, *a, **k):
        tracks = self.fn(*a, **k)
        self.ids += len(tracks)
        self.chunks += 1
        return tracks


def main():
    from transformers import Sam3VideoConfig, Sam3VideoModel

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--frames", type=int, default=128)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--chunk", type=int, default=32)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    if args.smoke:
        args.frames, args.size, args.chunk = 8, 64, 4
    torch.manual_seed(0)
    cfg = tiny_sam3_config() if args.smoke else Sam3VideoConfig()
    model = force_detections(Sam3VideoModel(cfg)).to(device, dtype).eval()
    vocab = cfg.detector_config.text_config.vocab_size
    segmenter = Sam3TextSegmenter(model, word_tokenizer(vocab))
    segmenter.chunk_tracks = counter = TrackCount(segmenter.chunk_tracks)
    frames = render_clip(ClipSpec("red", "circle", "right", "grass", 0.3, 0.5, 0.25, seed=1), args.frames, args.size)
    settings = MaskSettings(method="sam3", chunk=args.chunk, dilate=2, feather=1.5)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    try:
        found, error = object_masks(frames, "the red circle", settings=settings, detector=segmenter), ""
    except ValueError as err:  # keep the timing, say why
        found, error = None, str(err)
    total = time.perf_counter() - t
    result = {"total_s": round(total, 3), "s_per_frame": round(total / args.frames, 4),
              "tracks_per_chunk": round(counter.ids / max(counter.chunks, 1), 2), "chunks": counter.chunks,
              "filled": len(found.filled) if found else None,
              "mask_shape": list(found.masks.shape) if found else None, "error": error,
              "peak_gpu_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None,
              "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1)}
    print(result, flush=True)
    meta = {**run_meta(device, dtype), "frames": args.frames, "size": args.size, "chunk": args.chunk, "smoke": args.smoke,
            "model_input_px": int(np.ravel([cfg.image_size])[0]),
            "models": "tiny config" if args.smoke else "SAM 3 video (facebook/sam3 architecture, random weights)"}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "masks_sam3_smoke" if args.smoke else "masks_sam3"
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "result": result}, indent=1))
    r = result
    lines = [f"# Mask method sam3, {meta['models']}", "",
             f"{args.frames} frames {args.size}x{args.size} (model input {meta['model_input_px']} px), {meta['device']}, "
             f"{meta['dtype']}, torch {meta['torch']}, transformers {meta['transformers']}, commit {meta['commit']}; one "
             f"session per chunk of {args.chunk} frames; {r['params_m']} M parameters.", "",
             "| total s | s per frame | tracks per chunk | peak GPU GB | error |", "|---|---|---|---|---|",
             f"| {r['total_s']} | {r['s_per_frame']} | {r['tracks_per_chunk']} | {r['peak_gpu_gb']} | {r['error']} |"]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
