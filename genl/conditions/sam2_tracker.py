"""SAM 2 video propagation (transformers' `Sam2VideoModel`, or SAM 3's `Sam3TrackerVideoModel`) behind the `VideoSegmenter` methods of tracker.py.

Frames are resized and normalised in torch (`frames.SquareInputModel`), and prompts are put into the inference session the way
`Sam2VideoProcessor` does (box corners as points labelled 2 and 3, in the model's input pixels), so no image
processor backend (torchvision) is needed. One session per chunk bounds memory; the tracker carries masks over.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .detector import IMAGENET_MEAN, IMAGENET_STD
from .frames import SquareInputModel


class Sam2VideoSegmenter(SquareInputModel):
    def __init__(self, model, *, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        import importlib

        # Sam2VideoModel and Sam3TrackerVideoModel share this session API; each module names its session class
        module = importlib.import_module(type(model).__module__)
        super().__init__(model, mean, std)
        self._session_cls = next(getattr(module, n) for n in dir(module) if n.endswith("VideoInferenceSession"))
        self.session, self.hw = None, None

    def start(self, frames: np.ndarray) -> None:
        self.hw = frames.shape[1:3]
        self.session = self._session_cls(video=self.pixels(frames), video_height=self.hw[0], video_width=self.hw[1],
                                         inference_device=self.device, video_storage_device=self.device,
                                         inference_state_device=self.device, dtype=self.dtype)

    def prompt_boxes(self, j: int, boxes: np.ndarray, ids: list[int]) -> None:
        h, w = self.hw
        scale = torch.tensor([self.size / w, self.size / h], dtype=torch.float32)
        for obj_id, box in zip(ids, boxes):
            k = self.session.obj_id_to_idx(obj_id)
            coords = (torch.as_tensor(box, dtype=torch.float32).view(1, 1, 2, 2) * scale).to(self.device)
            labels = torch.tensor([[[2, 3]]], dtype=torch.int32, device=self.device)
            self.session.add_point_inputs(k, j, {"point_coords": coords, "point_labels": labels})
            self.session.remove_mask_inputs(k, j)
        self.session.obj_with_new_inputs = list(ids)

    def prompt_masks(self, j: int, masks: np.ndarray, ids: list[int]) -> None:
        for obj_id, mask in zip(ids, masks):
            k = self.session.obj_id_to_idx(obj_id)
            m = torch.from_numpy(np.ascontiguousarray(mask)).float().to(self.device)[None, None]
            m = (F.interpolate(m, (self.size, self.size), mode="bilinear", antialias=True) >= 0.5).float()
            self.session.add_mask_inputs(k, j, m)
            self.session.remove_point_inputs(k, j)
        self.session.obj_with_new_inputs = list(ids)

    @torch.inference_mode()
    def step(self, j: int):
        if self.session.get_obj_num() == 0:
            return [], np.zeros((0, *self.hw), np.float32), np.zeros(0, np.float32)
        out = self.model(self.session, frame_idx=j)
        logits = F.interpolate(out.pred_masks.float(), self.hw, mode="bilinear", align_corners=False)[:, 0]
        return (list(out.object_ids), logits.sigmoid().cpu().numpy(),
                out.object_score_logits.float().sigmoid().view(-1).cpu().numpy())
