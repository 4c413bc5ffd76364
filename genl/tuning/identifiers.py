"""Clip identifiers e^i (paper Sec. 4): one learned embedding per training clip, fed with the text.

Many clips of a long video share one prompt, so from noise and c^i alone the model cannot tell which clip
it is denoising; e^i (K tokens appended to the clip's text encoder states) tells it. Dropping e^i at random
during training (replaced by zeros, the "no identifier" ∅ also used for the unconditional branch at
sampling) keeps the text in charge of content, so the timeline can still edit the video.

Each e^i is its own parameter: a clip that was dropped, or not in the batch, has no gradient (grad None),
and AdamW skips it, so its embedding does not move on that step even through optimiser momentum.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

Window = tuple[int, int]


class ClipIdentifiers(nn.Module):
    """e^0..e^{N-1}, each (K, dim), for the training clips `windows` of a video of `num_frames` frames."""

    def __init__(self, windows: Sequence[Window], num_frames: int, dim: int, tokens: int = 1, std: float = 1.0,
                 generator: Optional[torch.Generator] = None):
        super().__init__()
        self.windows = [tuple(int(v) for v in w) for w in windows]
        self.num_frames = int(num_frames)
        self.tokens, self.dim = int(tokens), int(dim)
        self.embeddings = nn.ParameterList(
            [nn.Parameter(torch.randn(self.tokens, self.dim, generator=generator) * std) for _ in self.windows])

    def __len__(self) -> int:
        return len(self.windows)

    def states(self, text: torch.Tensor, clip: Optional[int]) -> torch.Tensor:
        """(rows, T, dim) text states of one clip's frames -> (rows, T + K, dim); clip None: ∅ (zeros)."""
        if self.tokens == 0:
            return text
        if clip is None:
            e = torch.zeros(self.tokens, self.dim, device=text.device, dtype=text.dtype)
        else:
            e = self.embeddings[clip].to(device=text.device, dtype=text.dtype)
        return torch.cat([text, e.unsqueeze(0).expand(text.shape[0], -1, -1)], dim=1)

    def mixed(self, weights: torch.Tensor) -> torch.Tensor:
        """Sum_i weights[i] e^i, (K, dim): the identifier of a window lying between training clips."""
        stack = torch.stack(list(self.embeddings))
        return torch.einsum("n,nkd->kd", weights.to(stack), stack)

    def for_window(self, window: Window, num_frames: int, mode: str = "linear") -> torch.Tensor:
        """Weights over training clips for a sampling window: exact when the clips match, else the two
        clips whose centres bracket the window's centre (time rescaled to the source video's length), mixed
        linearly ("linear") or the closer one ("nearest")."""
        n = len(self.windows)
        out = torch.zeros(n)
        if n == 0:
            return out
        if tuple(window) in self.windows and num_frames == self.num_frames:
            out[self.windows.index(tuple(window))] = 1.0
            return out
        centre = (window[0] + window[1] - 1) / 2 * (self.num_frames / max(num_frames, 1))
        centres = torch.tensor([(a + b - 1) / 2 for a, b in self.windows], dtype=torch.float64)
        if mode == "nearest" or n == 1:
            out[int((centres - centre).abs().argmin())] = 1.0
            return out
        if mode != "linear":
            raise ValueError(f"Unknown identifier interpolation '{mode}'. Choose linear or nearest.")
        right = int(torch.searchsorted(centres, torch.tensor([centre], dtype=torch.float64)).item())
        if right == 0 or right == n:
            out[min(right, n - 1)] = 1.0
            return out
        a, b = float(centres[right - 1]), float(centres[right])
        t = (centre - a) / (b - a)
        out[right - 1], out[right] = 1 - t, t
        return out

    def save_dict(self) -> dict:
        return {"identifiers": torch.stack(list(self.embeddings)).detach().cpu().float()} if len(self) else {}

    def meta(self) -> dict:
        return {"windows": [list(w) for w in self.windows], "num_frames": self.num_frames, "tokens": self.tokens,
                "dim": self.dim}

    @classmethod
    def from_saved(cls, meta: dict, tensor: Optional[torch.Tensor]) -> "ClipIdentifiers":
        ids = cls(meta["windows"], meta["num_frames"], meta["dim"], meta["tokens"], std=0.0)
        if tensor is not None:
            for p, v in zip(ids.embeddings, tensor):
                p.data.copy_(v)
        return ids


def drop_mask(count: int, rate: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Which of `count` clips train without their identifier this step (True = dropped)."""
    return torch.rand(count, generator=generator) < rate
