"""Temporal co-denoising (Gen-L-Video, Sec. 3.2 and Supp. III).

A long video of N frames is seen as short clips F_i(v) = v[S*i : S*i+M] that overlap in time. Each step,
every clip is denoised by a short-video model and the long video is rebuilt as the minimiser of
sum_i ||W_i (F_i(v) - v^i)||^2, whose closed form is, per frame j, the weighted average of frame j in every
clip that contains it. Here the averaging weights are the paper's W_i squared; `window_weights` returns
them directly.

We fuse the *model output* (epsilon, v or x0) rather than the stepped latents: the scheduler step is affine
in the model output with coefficients that are shared by all frames, so for DDIM the two are identical
(tests/test_codenoise.py proves it), and stepping once on the whole video keeps multistep schedulers'
history consistent.

Everything here is pure: no model, no scheduler, no global state.
"""
from __future__ import annotations

import math
import random
from typing import Callable, Optional, Sequence

import torch

Window = tuple[int, int]
Denoise = Callable[[torch.Tensor, object, int], torch.Tensor]
DenoiseBatch = Callable[[torch.Tensor, object, Sequence[int]], torch.Tensor]

WEIGHT_SCHEMES = ("flat", "gaussian", "pyramid")


def make_windows(num_frames: int, length: int, stride: int, *, loop: bool = False) -> list[Window]:
    """Clip ranges (start, end) with end exclusive, covering every frame.

    M=`length`, S=`stride`. When (N - M) is not a multiple of S, a last window ending exactly at N is added
    so the tail frames are denoised too (the paper's code drops them). With `loop=True` the windows keep
    the stride all the way round and wrap past the end (end > N means frames end-N.. come from the start),
    so the first and last frames are co-denoised together and the video loops seamlessly.
    """
    num_frames, length, stride = int(num_frames), int(length), int(stride)
    if num_frames < 1:
        raise ValueError(f"The video must have at least 1 frame (got {num_frames}).")
    if length < 1 or stride < 1:
        raise ValueError(f"Clip length M and stride S must be at least 1 (got M={length}, S={stride}).")
    if stride > length:
        raise ValueError(
            f"Stride S={stride} is larger than the clip length M={length}: some frames would never be "
            "denoised. Use S <= M (S = M means isolated clips; M/2 or M/4 is recommended)."
        )
    if length > num_frames:
        raise ValueError(
            f"Clip length M={length} is longer than the video ({num_frames} frames). "
            f"Make the video at least {length} frames long or use a shorter clip length."
        )
    if loop:
        count = math.ceil(num_frames / stride)
        return [(i * stride, i * stride + length) for i in range(count)]
    windows = [(start, start + length) for start in range(0, num_frames - length + 1, stride)]
    if windows[-1][1] != num_frames:
        windows.append((num_frames - length, num_frames))
    return windows


GOLDEN = (math.sqrt(5) - 1) / 2  # 1/phi: the most evenly spread sequence of offsets k*GOLDEN mod 1

SHIFT_OFFSETS = {
    # step -> grid offset in [0, S). Step 0 is always the paper's grid (offset 0).
    "golden": lambda step, stride, length: int(((step * GOLDEN) % 1.0) * stride),
    "cyclic": lambda step, stride, length: (step * max(1, length // 4)) % stride,
    "half": lambda step, stride, length: (step % 2) * (stride // 2),
    "random": lambda step, stride, length: 0 if step == 0 else random.Random(step).randrange(stride),
}
DEFAULT_SHIFT = "golden"


def offset_windows(num_frames: int, length: int, stride: int, offset: int) -> list[Window]:
    """The stride-S grid of clips moved right by `offset` frames, the first and last clip clamped to the
    video's ends: starts {0} + {offset + k*S strictly inside} + {N-M}. Offset 0 gives `make_windows`.

    At S=M this is at most one clip more than isolated clips: the clips of the moved grid that fit, plus one
    full-length clip at each end.
    """
    base = make_windows(num_frames, length, stride)  # validates M, S and N
    offset = int(offset) % int(stride)
    if offset == 0:
        return base
    last = int(num_frames) - int(length)
    starts = sorted({0, last} | set(range(offset, last, int(stride))))
    return [(s, s + int(length)) for s in starts]


def shifted_windows(num_frames: int, length: int, stride: int, step: int) -> list[Window]:
    """Windows F_i for denoising step `step`: the grid of `make_windows` moved by an offset that changes
    every step, so a seam between clips of one step lies inside a clip on the next steps.

    At S=M a step costs what isolated clips cost (plus at most one clip), yet no frame is a clip edge on
    every step. The offsets follow the golden-ratio sequence (0, 0.62 S, 0.24 S, 0.85 S, ...): consecutive
    seams land far apart and the offsets stay evenly spread for any number of steps. Full-length clips,
    first and last clamped to the video's ends, every frame covered; feed the list to `co_denoise` as is.
    """
    return offset_windows(num_frames, length, stride, SHIFT_OFFSETS[DEFAULT_SHIFT](int(step), int(stride),
                                                                                   int(length)))


def partition_windows(num_frames: int, length: int, step: int) -> list[Window]:
    """Disjoint clips for denoising step `step`: the video cut every M frames, the cuts moved by the step's
    golden-ratio offset o (as `shifted_windows` moves its grid), so the first clip has o frames and the last
    the rest. Each frame is denoised exactly once per step: N frame evaluations, where shifted clips at S=M
    take about N + M, because their clamped end clips overlap their neighbours. Only for models that take
    clips of any length (image UNets with cross-frame attention); a motion module wants full-length clips.
    """
    make_windows(num_frames, length, length)  # validates M and N
    num_frames, length = int(num_frames), int(length)
    offset = SHIFT_OFFSETS[DEFAULT_SHIFT](int(step), length, length) % length
    cuts = sorted({0, num_frames} | set(range(offset, num_frames, length)))
    return list(zip(cuts[:-1], cuts[1:]))


def window_frames(window: Window, num_frames: int) -> torch.Tensor:
    """Frame indices of a window in the long video (wrapping for looped windows)."""
    start, end = window
    return torch.arange(start, end) % num_frames


def window_weights(scheme: str, length: int, *, sigma: Optional[float] = None) -> torch.Tensor:
    """Per-frame fusion weights of one clip (the paper's W_i squared), all strictly positive.

    flat: every frame counts the same (the paper's default). gaussian: centre frames count more, which
    hides seams because a clip's edge frames, which saw the least temporal context, count least.
    pyramid: linear ramp 1, 2, ..., peak, ..., 2, 1 (as in MultiDiffusion-style tiling).
    """
    if length < 1:
        raise ValueError(f"Clip length must be at least 1 (got {length}).")
    idx = torch.arange(length, dtype=torch.float64)
    centre = (length - 1) / 2
    if scheme == "flat":
        w = torch.ones(length, dtype=torch.float64)
    elif scheme == "gaussian":
        s = sigma if sigma is not None else max(length / 4.0, 0.5)
        w = torch.exp(-((idx - centre) ** 2) / (2 * s * s))
    elif scheme == "pyramid":
        w = torch.minimum(idx + 1, length - idx)
    else:
        raise ValueError(f"Unknown fusion weights '{scheme}'. Choose one of: {', '.join(WEIGHT_SCHEMES)}.")
    return (w / w.max()).to(torch.float32)


def plan_batches(num_windows: int, windows_per_call: int) -> list[list[int]]:
    """Group window indices into as few calls of at most `windows_per_call` as possible, balanced in size
    (29 windows by 8 -> 8, 7, 7, 7 rather than 8, 8, 8, 5), so no call runs a small, inefficient batch."""
    per = max(1, int(windows_per_call))
    calls = -(-num_windows // per)
    sizes = [num_windows // calls + (1 if k < num_windows % calls else 0) for k in range(calls)]
    starts = [sum(sizes[:k]) for k in range(calls)]
    return [list(range(a, a + n)) for a, n in zip(starts, sizes)]


def window_calls(indices: Sequence[int], windows_per_call: int, batched: bool) -> list[list[int]]:
    """The model calls that cover `indices`: balanced stacks for a denoise_batch, one window per call else."""
    indices = list(indices)
    if not batched:
        return [[i] for i in indices]
    return [[indices[k] for k in group] for group in plan_batches(len(indices), windows_per_call)]


def joins_frames(denoise_batch: Optional["DenoiseBatch"]) -> bool:
    """Whether a denoise_batch takes clips of different lengths joined on the frame axis (it says so with a
    `joins_frames = True` attribute; image UNets can, since their clips meet only in cross-frame attention)."""
    return bool(getattr(denoise_batch, "joins_frames", False))


def model_calls(indices: Sequence[int], lengths: Sequence[int], windows_per_call: int,
                denoise_batch: Optional["DenoiseBatch"]) -> list[list[int]]:
    """`window_calls` for windows of any lengths (`lengths[i]` frames for window i). Equal lengths stack on the
    batch axis as always. Mixed lengths go to a denoise_batch that joins frames as consecutive runs of at most
    windows_per_call x the longest clip's frames (one call of N frames for `partition_windows` at the usual
    8+ clips per call); to any other, as one balanced stack per length."""
    indices = list(indices)
    sizes = [int(lengths[i]) for i in indices]
    if denoise_batch is None or len(set(sizes)) <= 1:  # (the common case: make_windows, shifted_windows)
        return window_calls(indices, windows_per_call, denoise_batch is not None)
    if joins_frames(denoise_batch):
        budget, calls = max(1, int(windows_per_call)) * max(sizes), [[]]
        used = 0
        for i, n in zip(indices, sizes):
            if calls[-1] and used + n > budget:
                calls.append([])
                used = 0
            calls[-1].append(i)
            used += n
        return calls
    by_length: dict[int, list[int]] = {}
    for i, n in zip(indices, sizes):
        by_length.setdefault(n, []).append(i)
    return [call for group in by_length.values() for call in window_calls(group, windows_per_call, True)]


def check_windows(windows: Sequence[Window], weights: Sequence[torch.Tensor], num_frames: int, device) -> list:
    """Each window's frame indices in the long video; ValueError when windows and weights W_i disagree."""
    if len(windows) != len(weights):
        raise ValueError(f"Got {len(windows)} windows but {len(weights)} weight vectors.")
    frame_idx = [window_frames(w, num_frames).to(device) for w in windows]
    for i, idx in enumerate(frame_idx):
        if weights[i].numel() != idx.numel():
            raise ValueError(f"Window {i} has {idx.numel()} frames but {weights[i].numel()} weights.")
    return frame_idx


def add_window_outputs(acc: torch.Tensor, x: torch.Tensor, t, frame_idx, weights, call: Sequence[int],
                       denoise: Optional[Denoise], denoise_batch: Optional[DenoiseBatch], frame_dim: int) -> None:
    """One model call: denoise the windows in `call` and add W_i F_i^T(out_i) into `acc` (frames on dim 2).

    x is the long video with frames on dim 2; the callables see (and return) frames on `frame_dim`.
    """
    def frames_on(tensor: torch.Tensor, src: int, dst: int) -> torch.Tensor:
        return tensor.movedim(src, dst) if src != dst else tensor

    def merge(i: int, out: torch.Tensor) -> None:
        w = weights[i].to(device=acc.device, dtype=acc.dtype)
        acc.index_add_(2, frame_idx[i], out.to(acc.dtype) * w.view(1, 1, -1, 1, 1))

    inputs = [frames_on(x.index_select(2, frame_idx[i]), 2, frame_dim) for i in call]
    if denoise_batch is None:
        for i, chunk in zip(call, inputs):
            merge(i, frames_on(denoise(chunk, t, i), frame_dim, 2))
        return
    sizes = [int(frame_idx[i].numel()) for i in call]
    if len(set(sizes)) > 1:  # clips joined on the frame axis (`model_calls` only asks a denoiser that joins frames)
        out = frames_on(denoise_batch(torch.cat(inputs, dim=frame_dim), t, list(call)), frame_dim, 2)
        if out.shape[2] != sum(sizes):
            raise ValueError("denoise_batch returned a different number of frames than it was given.")
        for i, part in zip(call, out.split(sizes, dim=2)):
            merge(i, part)
        return
    rows = x.shape[0]
    out = frames_on(denoise_batch(torch.cat(inputs, dim=0), t, list(call)), frame_dim, 2)
    if out.shape[0] != rows * len(call):
        raise ValueError("denoise_batch returned a different batch size than it was given.")
    for k, i in enumerate(call):
        merge(i, out[k * rows:(k + 1) * rows])


def weight_sum(frame_idx, weights, num_frames: int, dtype, device) -> torch.Tensor:
    """sum_i W_i per frame (the denominator of the fusion); ValueError when a frame has no positive weight."""
    wsum = torch.zeros(num_frames, dtype=dtype, device=device)
    for i, idx in enumerate(frame_idx):
        wsum.index_add_(0, idx, weights[i].to(device=device, dtype=dtype))
    if bool((wsum <= 0).any()):
        missing = torch.nonzero(wsum <= 0).flatten().tolist()
        raise ValueError(f"Frames {missing[:10]} are not covered by any window with positive weight.")
    return wsum


def fuse(acc: torch.Tensor, wsum: torch.Tensor, dtype, frame_dim: int) -> torch.Tensor:
    """sum_i W_i F_i^T(out_i) / sum_i W_i per frame, back in the latents' dtype and layout."""
    fused = (acc / wsum.view(1, 1, -1, 1, 1)).to(dtype)
    return fused.movedim(2, frame_dim) if frame_dim != 2 else fused


def co_denoise(
    latents: torch.Tensor,
    t,
    windows: Sequence[Window],
    weights: Sequence[torch.Tensor],
    denoise: Optional[Denoise] = None,
    *,
    denoise_batch: Optional[DenoiseBatch] = None,
    windows_per_call: int = 1,
    frame_dim: int = 2,
) -> torch.Tensor:
    """One co-denoising evaluation: the fused model output for the whole long video.

    latents: (batch, channels, frames, height, width) (or frames on `frame_dim`).
    denoise(window_latents, t, i) -> model output for window i, same shape as window_latents.
    denoise_batch(stacked, t, indices) -> outputs for several windows stacked on dim 0 (each window's
    batch rows kept together, in order); used when given, `windows_per_call` windows at a time.
    Returns sum_i W_i F_i^T(out_i) / sum_i W_i per frame, in latents' dtype.
    (genl/distributed.py runs the same steps with the windows spread over processes.)
    """
    if denoise is None and denoise_batch is None:
        raise TypeError("co_denoise needs a denoise or a denoise_batch callable.")
    x = latents.movedim(frame_dim, 2) if frame_dim != 2 else latents
    num_frames = x.shape[2]
    frame_idx = check_windows(windows, weights, num_frames, x.device)
    acc_dtype = torch.promote_types(x.dtype, torch.float32)  # fp16 models still average in fp32
    acc = torch.zeros(x.shape, dtype=acc_dtype, device=x.device)
    for call in model_calls(range(len(windows)), [len(f) for f in frame_idx], windows_per_call, denoise_batch):
        add_window_outputs(acc, x, t, frame_idx, weights, call, denoise, denoise_batch, frame_dim)
    wsum = weight_sum(frame_idx, weights, num_frames, acc_dtype, x.device)
    return fuse(acc, wsum, latents.dtype, frame_dim)
