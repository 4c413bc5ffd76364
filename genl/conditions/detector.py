"""Text -> boxes: GroundingDINO (transformers' `GroundingDinoForObjectDetection`) on batches of frames.

Pre-processing is done here in torch (resize + ImageNet normalisation, as the checkpoint's processor does), so
frames stay on the device in batches and no image-processor backend (torchvision) is needed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Detections:
    """One frame's boxes (N, 4) xyxy in pixels and scores (N,), best first; `best` is the highest score seen,
    kept even when nothing passed the thresholds, so a miss can say how close it came."""
    boxes: np.ndarray
    scores: np.ndarray
    best: float

    def __len__(self) -> int:
        return len(self.scores)


def grounding_text(prompt: str) -> str:
    """GroundingDINO's text format: lower case, phrases ended by '.'."""
    text = " ".join(prompt.lower().split()).strip(" .")
    return text + "."


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of xyxy boxes a (N, 4) and b (M, 4)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(-1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None] - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.7) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first (DETR queries can duplicate an object)."""
    order, keep = np.argsort(-scores), []
    while len(order):
        i, order = order[0], order[1:]
        keep.append(i)
        order = order[box_iou(boxes[i:i + 1], boxes[order])[0] < iou]
    return np.array(keep, int)


class GroundingDinoDetector:
    """`detect(frames, prompt, box_threshold, text_threshold) -> [Detections per frame]`."""

    def __init__(self, model, tokenizer, *, shortest_edge: int = 800, longest_edge: int = 1333,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, batch: int = 8):
        self.model, self.tokenizer, self.batch = model.eval(), tokenizer, batch
        self.shortest_edge, self.longest_edge = shortest_edge, longest_edge
        self.mean, self.std = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)

    @property
    def device(self):
        return next(self.model.parameters()).device

    def _input_size(self, h: int, w: int) -> tuple[int, int]:
        scale = min(self.shortest_edge / min(h, w), self.longest_edge / max(h, w))
        return max(1, round(h * scale)), max(1, round(w * scale))

    def pixels(self, frames: np.ndarray) -> torch.Tensor:
        dtype = next(self.model.parameters()).dtype
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).float() / 255
        x = F.interpolate(x, self._input_size(*frames.shape[1:3]), mode="bilinear", antialias=True,
                          align_corners=False)
        return ((x - self.mean.to(x.device)) / self.std.to(x.device)).to(dtype)

    def text_inputs(self, prompt: str) -> tuple[dict, torch.Tensor]:
        """Token ids of the prompt and a mask of the tokens that name the object (not [CLS], [SEP] or '.')."""
        enc = self.tokenizer([grounding_text(prompt)], return_tensors="pt", return_token_type_ids=True)
        ids = enc["input_ids"]
        special = set(self.tokenizer.all_special_ids) | set(self.tokenizer.convert_tokens_to_ids(["."]))
        phrase = torch.tensor([[t not in special for t in ids[0].tolist()]])
        return {k: v.to(self.device) for k, v in enc.items()}, phrase.to(self.device)

    @torch.inference_mode()
    def __call__(self, frames: np.ndarray, prompt: str, box_threshold: float = 0.35,
                 text_threshold: float = 0.25) -> list[Detections]:
        text, phrase = self.text_inputs(prompt)
        h, w = frames.shape[1:3]
        scale = torch.tensor([w, h, w, h], dtype=torch.float32)
        out = []
        for i in range(0, len(frames), self.batch):
            x = self.pixels(frames[i:i + self.batch])
            n = len(x)
            res = self.model(pixel_values=x, **{k: v.expand(n, -1) for k, v in text.items()})
            probs = res.logits.float().sigmoid()[..., : phrase.shape[1]] * phrase[:, None, :]  # (B, Q, T)
            scores = probs.max(-1).values.cpu()
            has_phrase = (probs > text_threshold).any(-1).cpu()
            boxes = res.pred_boxes.float().cpu()
            boxes = torch.cat([boxes[..., :2] - boxes[..., 2:] / 2, boxes[..., :2] + boxes[..., 2:] / 2], -1) * scale
            for s, b, ok in zip(scores, boxes, has_phrase):
                keep = ((s > box_threshold) & ok).numpy()
                bs, ss = b.numpy()[keep], s.numpy()[keep]
                idx = nms(bs, ss) if len(ss) else np.zeros(0, int)
                out.append(Detections(bs[idx].reshape(-1, 4), ss[idx], float(s.max()) if len(s) else 0.0))
        return out
