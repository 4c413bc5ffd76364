"""Tune-A-Video's temporal attention, added to every transformer block of an image UNet (paper Fig. 3).

After a block's spatial (cross-frame) attention, text cross-attention and feed-forward, each spatial
position attends over the M frames of its clip. The output projection starts at zero, so a freshly added
layer is the identity and the tuned model starts exactly as the image model (FreeNoise-style block swap:
`transformer_blocks[i] = TemporalTransformerBlock(block)`).
"""
from __future__ import annotations

from diffusers.models.attention_processor import Attention
from torch import nn


class TemporalTransformerBlock(nn.Module):
    """A BasicTransformerBlock followed by attention over frames; batch = clips x M, frames contiguous."""

    def __init__(self, block: nn.Module, dim: int, heads: int):
        super().__init__()
        self.block = block
        self.norm_temp = nn.LayerNorm(dim)
        self.attn_temp = Attention(query_dim=dim, heads=heads, dim_head=dim // heads, bias=False)
        nn.init.zeros_(self.attn_temp.to_out[0].weight)
        nn.init.zeros_(self.attn_temp.to_out[0].bias)
        self.num_frames = 1  # M, set by `set_clip_length` before each run

    def forward(self, hidden_states, *args, **kwargs):
        hidden_states = self.block(hidden_states, *args, **kwargs)
        frames = self.num_frames
        if frames <= 1:
            return hidden_states
        bf, tokens, ch = hidden_states.shape
        if bf % frames:
            raise ValueError(f"Batch of {bf} images is not a whole number of {frames}-frame clips.")
        # (clips*M, T, C) -> (clips*T, M, C): each position's sequence over frames
        x = hidden_states.view(bf // frames, frames, tokens, ch).transpose(1, 2).reshape(-1, frames, ch)
        x = x + self.attn_temp(self.norm_temp(x))
        return x.view(bf // frames, tokens, frames, ch).transpose(1, 2).reshape(bf, tokens, ch)


def add_temporal_layers(unet) -> int:
    """Wrap every transformer block of `unet` (once); returns how many blocks carry temporal attention."""
    count = 0
    for module in list(unet.modules()):
        blocks = getattr(module, "transformer_blocks", None)
        if not isinstance(blocks, nn.ModuleList):
            continue
        for i, block in enumerate(blocks):
            if isinstance(block, TemporalTransformerBlock):
                count += 1
                continue
            dim = block.norm1.normalized_shape[0]
            heads = block.attn1.heads
            blocks[i] = TemporalTransformerBlock(block, dim, heads).to(
                device=block.norm1.weight.device, dtype=block.norm1.weight.dtype)
            count += 1
    return count


def temporal_blocks(unet) -> list[TemporalTransformerBlock]:
    return [m for m in unet.modules() if isinstance(m, TemporalTransformerBlock)]


def set_clip_length(unet, num_frames: int) -> None:
    """Tell every temporal layer how many consecutive images form one clip (M)."""
    for block in temporal_blocks(unet):
        block.num_frames = int(num_frames)


def temporal_parameters(unet) -> list[nn.Parameter]:
    return [p for b in temporal_blocks(unet) for m in (b.norm_temp, b.attn_temp) for p in m.parameters()]
