"""SAM 3's text-prompted video segmentation (transformers' `Sam3VideoModel`): mask method 'sam3'.

Why a method of its own rather than a detector behind `tracker.track`: SAM 3 is a detector and a tracker in one
model. Its detector reads the object prompt on every frame and its own heuristics (hot start, keep-alive,
re-conditioning on confident detections) decide which tracks live, so it does not split into our keyframe
detector + `VideoSegmenter` steps. Frames are resized and normalised here in torch (its processor needs
torchvision, which the studio does not install), and the prompt is put into the session the way
`Sam3VideoProcessor.add_text_prompt` does. One session per chunk of frames bounds memory on long videos; the
instance rule (largest / all / index) picks among one chunk's tracks.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from .frames import SquareInputModel
from .mask_settings import MaskSettings
from .tracker import NoMatch, PackedMasks, TrackResult, fill_from_neighbours

SAM3_MEAN = SAM3_STD = (0.5, 0.5, 0.5)  # Sam3ImageProcessor's IMAGENET_STANDARD mean and std
PROMPT_TOKENS = 32                      # Sam3VideoProcessor pads every prompt to 32 tokens


@dataclass
class Track:
    """One SAM 3 object over a chunk: its masks per local frame (bool, H x W) and detection scores."""
    masks: dict
    scores: list

    @property
    def area(self) -> int:
        return int(sum(m.sum() for m in self.masks.values()))


def pick_tracks(tracks: dict[int, Track], settings: MaskSettings) -> list[int]:
    """Object ids to mask by the settings' rule: the largest over the chunk, all, or the index-th by mean score."""
    if not tracks or settings.instance == "all":
        return sorted(tracks)
    if settings.instance == "largest":
        return [max(sorted(tracks), key=lambda k: tracks[k].area)]
    ranked = sorted(tracks, key=lambda k: (-float(np.mean(tracks[k].scores)), k))
    return ranked[settings.index:settings.index + 1]


class Sam3TextSegmenter(SquareInputModel):
    """`segmenter(chunks, prompt, settings) -> TrackResult`: one mask per frame of the object `prompt` names."""

    def __init__(self, model, tokenizer, *, mean=SAM3_MEAN, std=SAM3_STD):
        super().__init__(model, mean, std)
        self.tokenizer = tokenizer

    def session(self, frames: np.ndarray, prompt: str):
        """A `Sam3VideoInferenceSession` over `frames` with the text prompt added."""
        from transformers.models.sam3_video.modeling_sam3_video import Sam3VideoInferenceSession

        dev = self.device
        session = Sam3VideoInferenceSession(video=self.pixels(frames), video_height=frames.shape[1],
                                            video_width=frames.shape[2], inference_device=dev,
                                            video_storage_device=dev, inference_state_device=dev, dtype=self.dtype)
        pid = session.add_prompt(prompt)
        enc = self.tokenizer(prompt, return_tensors="pt", padding="max_length", max_length=PROMPT_TOKENS,
                             truncation=True)
        session.prompt_input_ids[pid] = enc["input_ids"].to(dev)
        session.prompt_attention_masks[pid] = enc["attention_mask"].to(dev)
        return session

    @contextlib.contextmanager
    def detector_scores(self):
        """Yields a list that collects the best detection score (class x presence) of every detector call, so a
        prompt that matches nothing can say how close it came."""
        seen: list[float] = []

        def hook(_module, _inputs, out):
            probs = out.pred_logits.float().sigmoid()
            if getattr(out, "presence_logits", None) is not None:
                probs = probs * out.presence_logits.float().sigmoid().view(probs.shape[0], *[1] * (probs.dim() - 1))
            seen.append(float(probs.max()))

        handle = self.model.detector_model.register_forward_hook(hook)
        try:
            yield seen
        finally:
            handle.remove()

    @torch.inference_mode()
    def chunk_tracks(self, frames: np.ndarray, prompt: str, mask_threshold: float) -> dict[int, Track]:
        """SAM 3's tracks over one chunk (objects it suppressed or dropped during its hot start left out)."""
        h, w = frames.shape[1:3]
        session = self.session(frames, prompt)
        cut = (-np.inf if mask_threshold <= 0 else np.inf if mask_threshold >= 1 else  # probability -> logit
               float(np.log(mask_threshold / (1 - mask_threshold))))
        tracks: dict[int, Track] = {}
        for out in self.model.propagate_in_video_iterator(session):
            hidden = set(out.suppressed_obj_ids or ()) | set(session.hotstart_removed_obj_ids)
            for k, low in out.obj_id_to_mask.items():
                if k in hidden:
                    continue
                logits = F.interpolate(low.float().view(1, 1, *low.shape[-2:]), (h, w), mode="bilinear",
                                       align_corners=False)[0, 0]
                track = tracks.setdefault(int(k), Track({}, []))
                track.masks[out.frame_idx] = (logits > cut).cpu().numpy()
                track.scores.append(float(out.obj_id_to_score.get(k, 0.0)))
        for k in list(tracks):  # a track hidden at a later frame was shown earlier: drop it whole
            if k in session.hotstart_removed_obj_ids:
                del tracks[k]
        return tracks

    def __call__(self, chunks: Iterable[np.ndarray], prompt: str, settings: MaskSettings) -> TrackResult:
        masks = PackedMasks()
        with self.detector_scores() as seen:
            for chunk in chunks:
                tracks = self.chunk_tracks(chunk, prompt, settings.mask_threshold)
                chosen = [tracks[k] for k in pick_tracks(tracks, settings)]
                for j in range(len(chunk)):
                    parts = [t.masks[j] for t in chosen if j in t.masks]
                    mask = np.any(parts, axis=0) if parts else None
                    masks.append(mask if mask is not None and mask.any() else None)  # None: filled from a neighbour
        best = max(seen, default=0.0)
        if all(m is None for m in masks.frames):
            threshold = float(getattr(self.model, "score_threshold_detection", 0.5))
            raise NoMatch(f"SAM 3 found no '{prompt}' in the video; best detection score {best:.2f} < its "
                          f"threshold {threshold:.2f}. Describe the object differently, or try GroundingDINO + "
                          "SAM 2 (method grounded_sam2).")
        filled = fill_from_neighbours(masks.frames)
        return TrackResult(masks.stack(), [], filled, best)  # no keyframes: SAM 3 detects on every frame
