"""Tiny GroundingDINO + SAM 2 for the demo world, trained from small configs on `genl.demo.world`.

`python -m genl.demo.detectors train --out assets/demo-detectors --minutes 6`   (GPU; --smoke: CPU, < 1 min)
`python -m genl.demo.detectors evaluate --models assets/demo-detectors --videos 12`

The world knows every frame's exact mask, so both models learn from ground truth:
- GroundingDINO (`GroundingDinoForObjectDetection`, Swin + BERT from tiny configs, a word-level tokenizer built
  here with BERT's special-token ids, which the model's text masks rely on): the prompt "the {colour} {shape}"
  (or a variant) for the object in the frame, or a prompt naming something absent (no target: every score -> 0).
  The loss is GroundingDINO's own (transformers' GroundingDinoForObjectDetectionLoss): Hungarian matching over all
  queries (scipy's linear_sum_assignment), focal loss on the phrase's tokens, L1 + GIoU on boxes, on every decoder
  layer (auxiliary_loss) and on the two-stage encoder proposals that pick the decoder's queries. The first recipe
  matched only the last layer's cheapest query and never trained the proposals, so query selection stayed random
  (recall 0.086).
- SAM 2 (`Sam2VideoModel`): stage 1 boxes -> masks on single frames (batched `_single_frame_forward`);
  stage 2 the memory path: 3-frame clips through the very inference session used at run time (box on frame 0,
  frames 1-2 propagated), BCE + dice on masks and BCE on the object score.
Both are saved in fp16 safetensors under OUT/grounding-dino and OUT/sam2, with training_log.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from genl.demo.world import COLOURS, PALETTE, SHAPES, clip_states, random_clip, render_states, states_alpha

from .train import add_config_args, start_run

SPECIAL = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, ".": 1012, "?": 1029}  # BERT's ids
WORDS = ("the", "a", "an", "object", "shape", "thing") + COLOURS + SHAPES + ("dog", "cat", "car", "man", "green")


@dataclass
class DetectorConfig:
    """Sizes for a few MB each in fp16, trainable in minutes on one GPU."""
    size: int = 128
    d_model: int = 64
    queries: int = 20
    swin_dim: int = 24
    text_dim: int = 64
    text_layers: int = 2            # a word-level vocabulary of ~50 words: two layers bind colour to shape
    sam_hidden: int = 128           # > 64 and a multiple of it: SAM 2 splits object pointers into 64-wide memory tokens
    sam_dim: int = 24


def build_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = dict(SPECIAL)
    for w in WORDS:
        vocab.setdefault(w, 1030 + len(vocab) - len(SPECIAL))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 101),
                                                                                                ("[SEP]", 102)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", model_max_length=32)


def grounding_dino_config(cfg: DetectorConfig, vocab_size: int):
    from transformers import BertConfig, GroundingDinoConfig, SwinConfig

    d = cfg.swin_dim
    backbone = SwinConfig(image_size=cfg.size, patch_size=4, embed_dim=d, depths=[1, 1, 2, 1], num_heads=[1, 2, 2, 4],
                          window_size=4, out_features=["stage2", "stage3", "stage4"])
    text = BertConfig(vocab_size=vocab_size, hidden_size=cfg.text_dim, num_hidden_layers=cfg.text_layers,
                      num_attention_heads=2,
                      intermediate_size=2 * cfg.text_dim, max_position_embeddings=32)
    return GroundingDinoConfig(backbone_config=backbone, text_config=text, d_model=cfg.d_model,
                               num_queries=cfg.queries, encoder_layers=2, decoder_layers=2,
                               encoder_ffn_dim=2 * cfg.d_model, decoder_ffn_dim=2 * cfg.d_model,
                               encoder_attention_heads=4, decoder_attention_heads=4, encoder_n_points=2,
                               decoder_n_points=2, max_text_len=32, fusion_droppath=0.0,
                               auxiliary_loss=True,  # train every decoder layer, as GroundingDINO does
                               num_feature_levels=3)  # a 4th level would be 1x1 px at 64 px frames


def sam2_config(cfg: DetectorConfig):
    from transformers import Sam2HieraDetConfig, Sam2VideoConfig, Sam2VisionConfig

    s, h, d = cfg.size, cfg.sam_hidden, cfg.sam_dim
    backbone = Sam2HieraDetConfig(hidden_size=d, image_size=[s, s], blocks_per_stage=[1, 1, 2, 1],
                                  embed_dim_per_stage=[d, 2 * d, 4 * d, 8 * d], num_attention_heads_per_stage=[1, 1, 2, 2],
                                  window_size_per_stage=[4, 4, 4, 4], global_attention_blocks=[3],
                                  window_positional_embedding_background_size=[4, 4])
    vision = Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[8 * d, 4 * d, 2 * d, d],
                              backbone_feature_sizes=[[s // 4] * 2, [s // 8] * 2, [s // 16] * 2], fpn_hidden_size=h)
    # one mask output everywhere: there is no ambiguity to resolve in this world, and the IoU head stays simple
    return Sam2VideoConfig(vision_config=vision,
                           prompt_encoder_config=dict(hidden_size=h, image_size=s, patch_size=16, mask_input_channels=8),
                           mask_decoder_config=dict(hidden_size=h, mlp_dim=2 * h, num_attention_heads=2,
                                                    iou_head_hidden_dim=h),
                           image_size=s, memory_attention_hidden_size=h, memory_attention_num_layers=1,
                           memory_attention_feed_forward_hidden_size=2 * h, memory_attention_rope_feat_sizes=[s // 16] * 2,
                           memory_encoder_hidden_size=h, memory_encoder_output_channels=64,  # kv_in_dim=64 is fixed in transformers
                           mask_downsampler_embed_dim=h,
                           memory_fuser_embed_dim=h, memory_fuser_intermediate_dim=2 * h, num_maskmem=4,
                           multimask_output_in_sam=False, multimask_output_for_tracking=False)


def build_models(cfg: DetectorConfig = DetectorConfig(), seed: int = 0):
    """(GroundingDINO, tokenizer, Sam2VideoModel) with random weights, from the small configs above."""
    from transformers import GroundingDinoForObjectDetection, Sam2VideoModel

    torch.manual_seed(seed)
    tok = build_tokenizer()
    vocab = max(tok.get_vocab().values()) + 1
    return GroundingDinoForObjectDetection(grounding_dino_config(cfg, vocab)), tok, Sam2VideoModel(sam2_config(cfg))


def save_models(folder, gdino, tok, sam2, dtype=torch.float16) -> dict:
    """OUT/grounding-dino (model + tokenizer + preprocessor sizes) and OUT/sam2, loadable by detector_models."""
    folder = Path(folder)
    gd, sd = folder / "grounding-dino", folder / "sam2"
    gdino.to(dtype).save_pretrained(gd)
    tok.save_pretrained(gd)
    size = gdino.config.backbone_config.image_size
    (gd / "preprocessor_config.json").write_text(json.dumps({"size": {"shortest_edge": size, "longest_edge": size}}))
    sam2.to(dtype).save_pretrained(sd)
    return {"detector": str(gd), "tracker": str(sd)}


# ---------------------------------------------------------------- data

def object_prompt(colour: str, shape: str, rng) -> str:
    return str(rng.choice([f"the {colour} {shape}", f"a {colour} {shape}", f"{colour} {shape}"]))


def absent_prompt(colour: str, shape: str, rng, present: frozenset = frozenset()) -> str:
    """A prompt this frame does not match: another colour, another shape, or both, naming none of the
    (colour, shape) pairs in `present` either (the distractors of a scene)."""
    taken = set(present) | {(colour, shape)}
    while True:
        c = str(rng.choice([x for x in COLOURS if x != colour]))
        s = str(rng.choice([x for x in SHAPES if x != shape]))
        pair = [(c, shape), (colour, s), (c, s)][int(rng.integers(3))]
        if pair not in taken:
            return f"the {pair[0]} {pair[1]}"


def sample_clip(seed: int, size: int, frames: int = 16):
    """Frames (F, H, W, 3), exact masks (F, H, W) bool and boxes (F, 4) xyxy px of one random clip."""
    spec, video, masks, boxes, _ = _clip_and_coverage(seed, size, frames)
    return spec, video, masks, boxes


def _clip_and_coverage(seed: int, size: int, frames: int):
    """`sample_clip` plus the object's coverage (F, H, W) float, which a scene needs to draw under it."""
    spec = random_clip(seed)
    states = clip_states(spec, frames)
    coverage = states_alpha(states, size)
    masks = coverage > 0.5
    boxes = np.stack([_box(m) for m in masks])
    return spec, render_states(states, spec.seed, size), masks, boxes, coverage


def sample_scene(seed: int, size: int, frames: int = 16, distractors: int = 0):
    """`sample_clip` plus `distractors` other moving objects drawn under the named one, each differing from it
    in colour or shape or both: the prompt, not objectness, then decides which box is right. Returns
    (spec, frames, masks, boxes, present) with `present` the (colour, shape) pairs in the scene."""
    spec, video, masks, boxes, coverage = _clip_and_coverage(seed, size, frames)
    present = {(spec.colour, spec.shape)}
    if distractors <= 0:
        return spec, video, masks, boxes, frozenset(present)
    rng = np.random.default_rng(seed + 7_777_777)
    on_top = coverage[..., None]
    mixed = video.astype(np.float32)
    for _ in range(distractors):
        other = random_clip(rng)
        while (other.colour, other.shape) in present:
            other = random_clip(rng)
        present.add((other.colour, other.shape))
        alpha = states_alpha(clip_states(other, frames), size)[..., None] * (1 - on_top)
        mixed = mixed * (1 - alpha) + np.float32(PALETTE[other.colour]) * alpha
        on_top = np.maximum(on_top, alpha)
    video = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return spec, video, masks, boxes, frozenset(present)


def _box(mask):
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def _pixels(frames: np.ndarray, device) -> torch.Tensor:
    from genl.conditions.detector import IMAGENET_MEAN, IMAGENET_STD

    x = torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)) / torch.tensor(
        IMAGENET_STD, device=device).view(1, 3, 1, 1)


# ---------------------------------------------------------------- losses

def detection_targets(boxes: torch.Tensor, positive: torch.Tensor, size: int) -> list[dict]:
    """GroundingDINO labels: the frame's one box (cx, cy, w, h in 0..1) as the prompt's phrase (label 0), or no
    box at all for a prompt naming something absent."""
    b = boxes / size
    cxcywh = torch.cat([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], -1)
    return [{"class_labels": torch.zeros(int(p), dtype=torch.long, device=boxes.device), "boxes": c[None][: int(p)]}
            for c, p in zip(cxcywh, positive.tolist())]


def mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE + dice of mask logits (B, h, w) against target masks resized to h, w."""
    t = F.interpolate(target[:, None].float(), logits.shape[-2:], mode="area")[:, 0]
    p = logits.sigmoid()
    dice = 1 - (2 * (p * t).sum((-2, -1)) + 1) / (p.sum((-2, -1)) + t.sum((-2, -1)) + 1)
    return F.binary_cross_entropy_with_logits(logits, t) + dice.mean()


# ---------------------------------------------------------------- training

@dataclass
class DetectorTrainConfig:
    out: str = "assets/demo-detectors"
    minutes: float = 6.0            # whole training budget, split by `shares`
    shares: tuple = (0.70, 0.15, 0.15)  # GroundingDINO, SAM 2 on frames, SAM 2's memory path on clips
    clips: int = 3000
    batch: int = 128
    lr: float = 5e-4
    negatives: float = 0.3          # share of frames shown with a prompt they do not match
    log_every: int = 50
    seed: int = 0
    init: str = ""                  # go on training the models saved in this folder (a previous run's OUT)
    distractors: int = 0            # other objects per training frame, so that the words pick the box
    lr_text_scale: float = 1.0      # the text side's lr (BERT, its projection, the text enhancer) x this
    smoke: bool = False             # tiny sizes, CPU-friendly: checks the script end to end in < 1 min


def _render(args, distractors: int = 0):
    seed, size = args
    spec, frames, masks, boxes, present = sample_scene(seed, size, distractors=distractors)
    return frames, masks, boxes, spec.colour, spec.shape, present


class _Budget:
    def __init__(self, name, params, lr, seconds, log_every):
        """params: a list of tensors, or of param groups {"params": [...], "lr_scale": x}."""
        self.name, self.seconds, self.log_every, self.lr = name, seconds, log_every, lr
        groups = params if params and isinstance(params[0], dict) else [{"params": params, "lr_scale": 1.0}]
        self.opt = torch.optim.AdamW([dict(g, lr=lr * g["lr_scale"]) for g in groups], lr=lr, weight_decay=0.01)
        self.params = [p for g in groups for p in g["params"]]
        self.start, self.step, self.acc, self.curve = time.time(), 0, [], []

    def running(self) -> bool:
        return time.time() - self.start < self.seconds

    def update(self, loss) -> None:
        frac = min(1.0, (time.time() - self.start) / max(self.seconds, 1e-9))
        for g in self.opt.param_groups:  # linear warm-up over 100 steps, then cosine to 5 % over the time budget
            g["lr"] = self.lr * g["lr_scale"] * min(1.0, (self.step + 1) / 100) * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * frac)))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        self.step += 1
        self.acc.append(float(loss.detach()))
        if self.step % self.log_every == 0:
            self.curve.append({"step": self.step, "seconds": round(time.time() - self.start, 1),
                               "loss": float(np.mean(self.acc))})
            self.acc = []
            print(f"[{self.name}] step {self.step} {time.time() - self.start:.0f}s loss {self.curve[-1]['loss']:.4f}",
                  flush=True)

    def summary(self) -> dict:
        final = self.curve[-1]["loss"] if self.curve else (float(np.mean(self.acc)) if self.acc else None)
        return {"steps": self.step, "seconds": round(time.time() - self.start, 1), "final_loss": final,
                "loss": self.curve}


TEXT_SIDE = ("text_backbone", "text_projection", "text_enhancer")


def detector_groups(gdino, lr_text_scale: float) -> list[dict]:
    """GroundingDINO's trainable weights in two param groups: the text side at lr x `lr_text_scale`, the rest
    at lr. Why: with one lr the boxes learn and the words barely move, so every prompt scores alike (runs 6-8)."""
    text, rest = [], []
    for name, p in gdino.named_parameters():
        if p.requires_grad:
            (text if any(k in name for k in TEXT_SIDE) else rest).append(p)
    return [{"params": rest, "lr_scale": 1.0}, {"params": text, "lr_scale": float(lr_text_scale)}]


def train(cfg: DetectorTrainConfig) -> dict:
    from scipy.optimize import linear_sum_assignment  # noqa: F401  GroundingDINO's loss matches with it (fail early)

    from .train import render_parallel

    t0 = time.time()
    device, log = start_run(cfg)
    mc = DetectorConfig(size=64, d_model=32, queries=10, swin_dim=8, text_dim=32, sam_hidden=128, sam_dim=8) \
        if cfg.smoke else DetectorConfig()
    log["model"] = asdict(mc)
    gdino, tok, sam2 = build_models(mc, cfg.seed)
    if cfg.init:  # a previous run's models, in float32 for training
        from transformers import GroundingDinoForObjectDetection, Sam2VideoModel

        gdino = GroundingDinoForObjectDetection.from_pretrained(Path(cfg.init) / "grounding-dino", dtype=torch.float32)
        sam2 = Sam2VideoModel.from_pretrained(Path(cfg.init) / "sam2", dtype=torch.float32)
        log["init"] = cfg.init
    gdino, sam2 = gdino.to(device).train(), sam2.to(device).train()
    data = render_parallel(partial(_render, distractors=cfg.distractors), cfg.clips, mc.size, cfg.seed)
    frames = np.stack([d[0] for d in data])           # (N, 16, H, W, 3)
    masks = torch.from_numpy(np.stack([d[1] for d in data])).to(device)
    boxes = torch.from_numpy(np.stack([d[2] for d in data])).to(device)
    words = [(d[3], d[4]) for d in data]
    present = [d[5] for d in data]
    pixels = torch.cat([_pixels(f, "cpu").half() for f in frames]).view(*frames.shape[:2], 3, mc.size, mc.size)
    pixels = pixels.to(device)
    log["render_seconds"] = round(time.time() - t0, 1)
    rng = np.random.default_rng(cfg.seed)
    budget = cfg.minutes * 60
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")

    def batch(n):
        ci = torch.randint(len(frames), (n,), device=device)
        fi = torch.randint(16, (n,), device=device)
        return ci, fi

    # ---- GroundingDINO
    # fp32 (TF32 matmuls): the Hungarian costs and GIoU want full precision, and the model is small
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    st = _Budget("grounding-dino", detector_groups(gdino, cfg.lr_text_scale), cfg.lr, cfg.shares[0] * budget, cfg.log_every)
    while st.running():
        ci, fi = batch(cfg.batch)
        positive = torch.from_numpy(rng.random(cfg.batch) >= cfg.negatives).to(device)
        texts = [object_prompt(*words[c], rng) if p else absent_prompt(*words[c], rng, present[c])
                 for c, p in zip(ci.tolist(), positive.tolist())]
        enc = tok([t + "." for t in texts], padding=True, return_tensors="pt", return_token_type_ids=True).to(device)
        out = gdino(pixel_values=pixels[ci, fi].float(), **enc,
                    labels=detection_targets(boxes[ci, fi], positive, mc.size))
        st.update(out.loss)
    log["grounding_dino"] = st.summary()

    # ---- SAM 2, stage 1: box -> mask on single frames
    params = [p for p in sam2.parameters() if p.requires_grad]
    st = _Budget("sam2-frames", params, cfg.lr, cfg.shares[1] * budget, cfg.log_every)
    while st.running():
        ci, fi = batch(cfg.batch)
        b = boxes[ci, fi] + torch.randn_like(boxes[ci, fi]) * 2  # detector boxes are not exact
        with autocast:
            out = sam2._single_frame_forward(pixel_values=pixels[ci, fi].float(), input_boxes=b[:, None],
                                             multimask_output=False)
        pm = out.pred_masks
        loss = mask_loss(pm.reshape(len(ci), -1, *pm.shape[-2:])[:, 0].float(), masks[ci, fi]) + F.binary_cross_entropy_with_logits(
            out.object_score_logits.float().view(-1), torch.ones(len(ci), device=device))
        st.update(loss)
    log["sam2_frames"] = st.summary()

    # ---- SAM 2, stage 2: the memory path, through the run-time inference session (with gradients)
    from genl.conditions.sam2_tracker import Sam2VideoSegmenter

    forward = type(sam2).forward.__wrapped__  # forward is decorated with inference_mode for users
    seg = Sam2VideoSegmenter(sam2)
    st = _Budget("sam2-clips", params, cfg.lr / 3, cfg.shares[2] * budget, cfg.log_every)
    while st.running():
        c = int(rng.integers(len(frames)))
        f0 = int(rng.integers(0, 16 - 4))
        picks = [f0, f0 + 1 + int(rng.integers(2)), f0 + 3 + int(rng.integers(2))]
        seg.hw = (mc.size, mc.size)
        seg.session = seg._session_cls(video=pixels[c, picks].float(), video_height=mc.size, video_width=mc.size,
                                       inference_device=device, video_storage_device=device,
                                       inference_state_device=device, dtype=torch.float32)
        seg.prompt_boxes(0, boxes[c, picks[0]][None].cpu().numpy() + rng.normal(0, 2, (1, 4)), [0])
        loss = 0
        with autocast:
            for j in range(3):
                out = forward(sam2, seg.session, frame_idx=j)
                loss = loss + mask_loss(out.pred_masks.reshape(1, -1, *out.pred_masks.shape[-2:])[:, 0].float(),
                                              masks[c, picks[j]][None]) + \
                    F.binary_cross_entropy_with_logits(out.object_score_logits.float().view(-1),
                                                       torch.ones(1, device=device))
        st.update(loss / 3)
    log["sam2_clips"] = st.summary()

    out = Path(cfg.out)
    paths = save_models(out, gdino.eval().cpu(), tok, sam2.eval().cpu())
    log["total_seconds"] = round(time.time() - t0, 1)
    log["files_mb"] = {k: round(sum(f.stat().st_size for f in Path(v).iterdir()) / 1e6, 2) for k, v in paths.items()}
    (out / "training_log.json").write_text(json.dumps(log, indent=1))
    print(f"saved {out} in {log['total_seconds']}s: {log['files_mb']}", flush=True)
    return log


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m genl.demo.detectors")
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the tiny GroundingDINO + SAM 2 on the shapes world")
    add_config_args(t, DetectorTrainConfig(), ("out", "minutes", "clips", "batch", "lr", "negatives", "log_every",
                                               "seed", "init", "distractors", "lr_text_scale"))
    t.add_argument("--shares", type=float, nargs=3, default=DetectorTrainConfig().shares,
                   help="shares of --minutes for GroundingDINO, SAM 2 on frames and SAM 2's memory path on clips")
    t.add_argument("--smoke", action="store_true", help="tiny sizes and data: a CPU check in < 1 min")
    t.add_argument("--evaluate", type=int, default=0, help="then evaluate on this many held-out videos")
    e = sub.add_parser("evaluate", help="recall, mask IoU and flicker on held-out synthetic videos")
    e.add_argument("--models", default="assets/demo-detectors")
    e.add_argument("--videos", type=int, default=12)
    e.add_argument("--frames", type=int, default=32)
    e.add_argument("--device", default="auto")
    e.add_argument("--distractors", type=int, default=0, help="other objects in every frame (the prompt decides)")
    e.add_argument("--box-threshold", type=float, default=0.35, help="the masks' and the recall's box threshold")
    args = ap.parse_args(argv)
    if args.command == "train":
        kw = {k: v for k, v in vars(args).items() if k not in ("command", "evaluate")}
        if args.smoke:
            kw.update(minutes=min(kw["minutes"], 0.2), clips=min(kw["clips"], 16), batch=min(kw["batch"], 4),
                      log_every=min(kw["log_every"], 10))
        train(DetectorTrainConfig(**kw))
        if args.evaluate:
            from .detectors_eval import write_report

            for n in sorted({0, args.distractors}):  # and on scenes like the training ones
                write_report(args.out, args.evaluate, 16 if args.smoke else 32, distractors=n)
        return 0
    from .detectors_eval import write_report

    write_report(args.models, args.videos, args.frames, args.device, args.distractors, args.box_threshold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
