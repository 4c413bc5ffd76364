"""The co-denoising plan of one run: clips F_i per denoising step, their fusion weights W_i, how many clips
share a model call, and the cross-frame attention. Built once from `CoDenoiseSettings` for N frames, as
diffusers' `enable_free_noise(...)` is set once, then handed whole to the sampler.

Windows are asked for per step, `plan.windows_at(step)`, through a schedule name -> function table
(AnimateDiff-Evolved's CONTEXT_MAPPING). "fixed" is the paper's: the same windows every step; "shifted" moves the stride-S grid every step. A schedule
may move its windows every step, so anything derived per window (prompt mixes, control rows) is looked up
by the window (start, end) itself, never by its position in one fixed list.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

import torch

from .codenoise import Window, make_windows, shifted_windows, window_weights

if TYPE_CHECKING:
    from .distributed import DistributedContext

def _joined_group() -> Optional["DistributedContext"]:
    """The group this process joined (a rank of a several-GPU job), else None: plans built in a rank are
    window-parallel without any pipeline passing the context along."""
    from .distributed import current  # lazy: distributed imports the sampler, which imports this module

    return current()


# (num_frames N, clip length M, stride S, step, *, loop) -> windows covering every frame
Schedule = Callable[..., list]


def fixed_windows(num_frames: int, length: int, stride: int, step: int, *, loop: bool = False) -> list[Window]:
    """The paper's schedule: F_i(v) = v[S*i : S*i+M] at every step."""
    return make_windows(num_frames, length, stride, loop=loop)


def shifted_schedule(num_frames: int, length: int, stride: int, step: int, *, loop: bool = False) -> list[Window]:
    """Windows that move every step (`genl.codenoise.shifted_windows`); best at S=M, where a step costs what
    isolated clips cost. Its first and last clips are clamped to the video's ends, so it cannot wrap round."""
    if loop:
        raise ValueError("The 'shifted' window schedule cannot make a looping video (its clips stop at the "
                         "video's ends). Turn looping off or use the 'fixed' schedule.")
    return shifted_windows(num_frames, length, stride, step)


SCHEDULES: dict[str, Schedule] = {"fixed": fixed_windows, "shifted": shifted_schedule}


@dataclass(frozen=True)
class CoDenoisePlan:
    """Everything the sampler needs to know about clips for an N-frame video; pure data plus caches."""

    num_frames: int
    clip_length: int  # M
    stride: int  # S
    weights: str = "flat"  # fusion weight scheme of W_i
    loop: bool = False
    schedule: str = "fixed"
    windows_per_call: int = 1
    attention: str = "bidirectional"
    parallel: Optional["DistributedContext"] = field(default_factory=_joined_group, compare=False, repr=False)
    _windows: dict = field(default_factory=dict, compare=False, repr=False)
    _weights: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Unknown window schedule '{self.schedule}'. Choose one of: {', '.join(SCHEDULES)}.")
        self.windows_at(0)  # fails early, in plain words, for an impossible M, S or N

    @classmethod
    def from_settings(cls, codenoise, num_frames: int, *, attention: Optional[str] = None,
                      windows_per_call: Optional[int] = None) -> "CoDenoisePlan":
        """`windows_per_call` resolves the settings' None (from free memory) for the device at hand."""
        extra = {"attention": attention} if attention is not None else {}
        return cls(num_frames=int(num_frames), clip_length=codenoise.clip_length, stride=codenoise.stride,
                   weights=codenoise.weights, loop=codenoise.loop, schedule=codenoise.schedule,
                   windows_per_call=int(codenoise.windows_per_call or windows_per_call or 1), **extra)

    def windows_at(self, step: int) -> list[Window]:
        """The clips denoised at denoising step `step` (0 = the first step this run takes)."""
        if step not in self._windows:
            fn = SCHEDULES[self.schedule]
            self._windows[step] = fn(self.num_frames, self.clip_length, self.stride, step, loop=self.loop)
        return self._windows[step]

    def weights_at(self, step: int) -> list[torch.Tensor]:
        """W_i for each window of `windows_at(step)`; one vector per distinct clip length."""
        out = []
        for start, end in self.windows_at(step):
            if end - start not in self._weights:
                self._weights[end - start] = window_weights(self.weights, end - start)
            out.append(self._weights[end - start])
        return out

    @property
    def windows(self) -> list[Window]:
        """The first step's windows: what the strip and the estimate show."""
        return self.windows_at(0)
