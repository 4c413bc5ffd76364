"""Cross-frame attention processors for image UNets run on clips (paper Sec. 4).

An image UNet sees a clip of M frames as M images stacked on the batch axis. Replacing each self-attention
layer's keys/values with those of other frames of the same clip makes the frames share appearance.

bidirectional (Gen-L-Video): the anchor a = floor(M/2) attends to itself; frame j > a attends to
  [z_{j-1}, z_a] and j < a to [z_{j+1}, z_a], so information flows from the middle to both ends and the
  anchors of overlapping clips influence each other.
sparse_causal (Tune-A-Video / Text2Video-Zero): frame j attends to [z_0, z_{j-1}] (frame 0 to itself), kept
  for comparison: its first frame ignores all others, which the paper shows drifts on long videos.

The anchor is written as [z_a, z_a]: softmax over duplicated keys gives exactly the same output as over
[z_a] alone, and one shape for every frame lets the whole clip go through one SDPA call.

Clips of different lengths can share one call (the "partitioned" schedule joins them on the frame axis):
`frame_layout` gives every processor the (first, second) key frame of each image of the next batch as
index tensors, which a compiled UNet takes as inputs, so a new layout costs no recompilation.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Sequence

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import AttnProcessor2_0

MODES = ("bidirectional", "sparse_causal")


def key_frame_indices(mode: str, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each frame j, the two frames whose keys/values it attends to: (first, second) index tensors."""
    j = torch.arange(num_frames)
    if mode == "bidirectional":
        anchor = num_frames // 2
        neighbour = torch.where(j > anchor, j - 1, torch.where(j < anchor, j + 1, j))
        return neighbour, torch.full_like(j, anchor)
    if mode == "sparse_causal":
        return torch.zeros_like(j), (j - 1).clamp_min(0)
    raise ValueError(f"Unknown cross-frame attention '{mode}'. Choose one of: {', '.join(MODES)}.")


def layout_key_frames(mode: str, lengths, copies: int = 1) -> torch.Tensor:
    """(2, copies * sum(lengths)) batch indices of each image's two key frames, for clips of `lengths` frames
    joined on the batch axis, the whole layout repeated `copies` times (the CFG halves)."""
    firsts, seconds, start = [], [], 0
    for n in lengths:
        first, second = key_frame_indices(mode, int(n))
        firsts.append(first + start)
        seconds.append(second + start)
        start += int(n)
    one = torch.stack([torch.cat(firsts), torch.cat(seconds)])
    return torch.cat([one + k * start for k in range(int(copies))], dim=1)


def cross_frame_processors(unet) -> list["CrossFrameAttnProcessor"]:
    """The cross-frame processors installed on `unet` (empty when none): found once, when a pipeline builds
    its denoiser, rather than by walking the UNet's modules at every call."""
    return [p for p in unet.attn_processors.values() if isinstance(p, CrossFrameAttnProcessor)]


@contextmanager
def frame_layout(processors: Sequence["CrossFrameAttnProcessor"], lengths: Sequence[int], copies: int, device):
    """Around one UNet call on clips of `lengths` frames joined on the batch axis (`copies` times: the CFG
    halves): when any clip is not the processors' M long, give their attention each image's key frames
    (`layout_key_frames`), and take them back after the call. Equal M-frame clips keep the processors' own
    layout."""
    layout = bool(processors) and any(int(n) != processors[0].num_frames for n in lengths)
    if layout:
        keys = layout_key_frames(processors[0].mode, lengths, copies).to(device)
        for proc in processors:
            proc.frame_keys = keys
    try:
        yield
    finally:
        if layout:
            for proc in processors:
                proc.frame_keys = None


class CrossFrameAttnProcessor:
    """SDPA self-attention whose keys/values come from other frames of the same clip.

    `num_frames` is the clip length M; the batch axis must be (clips x M) with frames contiguous, which is
    how the pipelines stack windows (and CFG halves). Cross-attention (text) layers are left unchanged.
    """

    def __init__(self, mode: str = "bidirectional", num_frames: int = 16):
        key_frame_indices(mode, 1)  # validates the mode
        self.mode = mode
        self.num_frames = int(num_frames)
        self.frame_keys = None  # frame_layout: key frames of each image of the batch, for mixed clip lengths

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        if encoder_hidden_states is not None:  # a text cross-attention layer: plain attention
            return _plain_attention(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        batch, tokens, _ = hidden_states.shape
        frames, keys = self.num_frames, self.frame_keys
        if keys is not None and keys.shape[1] != batch:
            raise ValueError(f"The frame layout covers {keys.shape[1]} images but the batch has {batch}.")
        if keys is None and batch % frames != 0:
            raise ValueError(f"Batch of {batch} images is not a whole number of {frames}-frame clips.")
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)
        if keys is None:
            first, second = (i.to(hidden_states.device) for i in key_frame_indices(self.mode, frames))
            key = _gather_two(key, frames, first, second)
            value = _gather_two(value, frames, first, second)
        else:
            key, value = _gather_layout(key, keys), _gather_layout(value, keys)

        heads = attn.heads
        head_dim = query.shape[-1] // heads
        query = query.view(batch, -1, heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        out = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(query.dtype)
        return _finish(attn, out, residual, input_ndim, hidden_shape=(b, c, h, w) if input_ndim == 4 else None)


def _gather_two(x: torch.Tensor, frames: int, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """(clips*M, T, C) -> (clips*M, 2T, C): each frame's tokens from frames first[j] then second[j]."""
    bt, tokens, ch = x.shape
    x = x.view(bt // frames, frames, tokens, ch)
    both = torch.cat([x[:, first], x[:, second]], dim=2)
    return both.reshape(bt, 2 * tokens, ch)


def _gather_layout(x: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """(B, T, C) -> (B, 2T, C): image b's tokens from images keys[0, b] then keys[1, b] of the same batch."""
    return torch.cat([x.index_select(0, keys[0]), x.index_select(0, keys[1])], dim=1)


def _plain_attention(attn, hidden_states, encoder_hidden_states, attention_mask, temb):
    return AttnProcessor2_0()(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


def _finish(attn, out, residual, input_ndim, hidden_shape):
    out = attn.to_out[0](out)
    out = attn.to_out[1](out)
    if input_ndim == 4:
        b, c, h, w = hidden_shape
        out = out.transpose(-1, -2).reshape(b, c, h, w)
    if attn.residual_connection:
        out = out + residual
    return out / attn.rescale_output_factor


def set_cross_frame_attention(unet, mode: str = "bidirectional", num_frames: int = 16) -> None:
    """Install the processor on every self-attention (attn1) layer of an image UNet's transformer blocks.

    Temporal/motion-module attention and text cross-attention keep their own processors.
    """
    processors = {}
    for name, proc in unet.attn_processors.items():
        is_spatial_self = name.endswith("attn1.processor") and "motion_modules" not in name
        processors[name] = CrossFrameAttnProcessor(mode, num_frames) if is_spatial_self else proc
    unet.set_attn_processor(processors)


def reset_attention(unet) -> None:
    """Back to plain per-frame self-attention on the layers `set_cross_frame_attention` changed."""
    unet.set_attn_processor({name: AttnProcessor2_0() if isinstance(proc, CrossFrameAttnProcessor) else proc
                             for name, proc in unet.attn_processors.items()})
