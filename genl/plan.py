"""The co-denoising plan of one run: clips F_i per denoising step, their fusion weights W_i, how many clips
share a model call, and the cross-frame attention. Built once from `CoDenoiseSettings` for N frames, as
diffusers' `enable_free_noise(...)` is set once, then handed whole to the sampler.

Windows are asked for per step, `plan.windows_at(step)`, through a schedule name -> function table
(AnimateDiff-Evolved's CONTEXT_MAPPING). "fixed" is the paper's: the same windows every step; "shifted" moves
the stride-S grid every step; "settled" denoises the first steps (where the layout is decided) with overlapping
fixed clips and moves the grid afterwards; "partitioned" (image UNets only) cuts the video into disjoint clips
whose cuts move every step, so each frame is denoised once per step. A schedule may move its windows every step, so anything derived per
window (prompt mixes, control rows) is looked up by the window (start, end) itself, never by its position in
one fixed list.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, Optional

import torch

from .codenoise import Window, make_windows, partition_windows, shifted_windows, window_weights

if TYPE_CHECKING:
    from .distributed import DistributedContext

def _joined_group() -> Optional["DistributedContext"]:
    """The group this process joined (a rank of a several-GPU job), else None: plans built in a rank are
    window-parallel without any pipeline passing the context along."""
    from .distributed import current  # lazy: distributed imports the sampler, which imports this module

    return current()


# (num_frames N, clip length M, stride S, step, *, loop, num_steps) -> windows covering every frame;
# num_steps is the run's number of denoising steps (0 when unknown)
Schedule = Callable[..., list]

SETTLE_SHARE = 0.1  # "settled": share of a run's steps denoised with overlapping fixed clips first
SETTLE_DIVISOR = 2  # ... whose stride is M / SETTLE_DIVISOR


def fixed_windows(num_frames: int, length: int, stride: int, step: int, *, loop: bool = False,
                  num_steps: int = 0) -> list[Window]:
    """The paper's schedule: F_i(v) = v[S*i : S*i+M] at every step."""
    return make_windows(num_frames, length, stride, loop=loop)


def shifted_schedule(num_frames: int, length: int, stride: int, step: int, *, loop: bool = False,
                     num_steps: int = 0) -> list[Window]:
    """Windows that move every step (`genl.codenoise.shifted_windows`); best at S=M, where a step costs what
    isolated clips cost. Its first and last clips are clamped to the video's ends, so it cannot wrap round."""
    if loop:
        raise ValueError("Moving clips cannot make a looping video (their clips stop at the video's ends). "
                         "Turn looping off or use the 'fixed' schedule.")
    return shifted_windows(num_frames, length, stride, step)


def partitioned_schedule(num_frames: int, length: int, stride: int, step: int, *, loop: bool = False,
                         num_steps: int = 0) -> list[Window]:
    """Disjoint clips whose cuts move every step (`genl.codenoise.partition_windows`): each frame is denoised
    once per step. For image UNets with cross-frame attention, whose clips may be of any length; S must be M."""
    if loop:
        raise ValueError("Partitioned clips stop at the video's ends, so they cannot make a looping video. "
                         "Turn looping off or use the 'fixed' schedule.")
    if int(stride) != int(length):
        raise ValueError(f"The 'partitioned' schedule cuts the video into clips that do not overlap: set the "
                         f"stride to the clip length (S = M = {length}), or pick another schedule for S={stride}.")
    return partition_windows(num_frames, length, step)


def settle_steps(num_steps: int, share: float = SETTLE_SHARE) -> int:
    """How many first steps of an n-step run use overlapping fixed clips (at least one)."""
    return max(1, math.ceil(share * num_steps)) if num_steps else 1


def settled_schedule_for(share: float = SETTLE_SHARE, divisor: int = SETTLE_DIVISOR) -> Schedule:
    """A "settled" schedule: the first `share` of the steps use fixed clips at stride M/divisor, which agree
    with each other where they overlap while the layout of the video is decided; the rest use
    `shifted_windows` at the plan's stride, which costs what isolated clips cost at S=M."""

    def settled(num_frames: int, length: int, stride: int, step: int, *, loop: bool = False,
                num_steps: int = 0) -> list[Window]:
        if loop:
            raise ValueError("Settled clips move after the first steps, so they cannot make a looping video. "
                             "Turn looping off or use the 'fixed' schedule.")
        if step < settle_steps(num_steps, share):
            return make_windows(num_frames, length, min(stride, max(1, int(length) // divisor)))
        return shifted_windows(num_frames, length, stride, step)

    return settled


def _takes_num_steps(fn: Schedule) -> bool:
    params = inspect.signature(fn).parameters
    return "num_steps" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


SCHEDULES: dict[str, Schedule] = {"fixed": fixed_windows, "shifted": shifted_schedule,
                                  "settled": settled_schedule_for(), "partitioned": partitioned_schedule}
FULL_LENGTH_SCHEDULES = ("fixed", "shifted", "settled")  # every clip M frames: what motion modules need


def require_full_length_clips(schedule: str) -> None:
    """ValueError in a sentence when a model with temporal layers (a video model's motion modules, a one-shot
    tuning's temporal attention), which want M-frame clips, gets a schedule with shorter ones."""
    if schedule not in FULL_LENGTH_SCHEDULES:
        raise ValueError(f"The '{schedule}' clip schedule makes clips shorter than the clip length, which temporal "
                         "layers (a video model's motion modules, a one-shot tuning's temporal attention) do not "
                         "take. It is for image models without them (the tuning-free generator, edits, control); "
                         "use 'shifted' or 'settled' for speed here.")


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
    num_steps: int = 0  # the run's denoising steps, for schedules that change over the run (0: not known yet)
    parallel: Optional["DistributedContext"] = field(default_factory=_joined_group, compare=False, repr=False)
    _windows: dict = field(default_factory=dict, compare=False, repr=False)
    _weights: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Unknown window schedule '{self.schedule}'. Choose one of: {', '.join(SCHEDULES)}.")
        self.windows_at(0)  # fails early, in plain words, for an impossible M, S or N

    @classmethod
    def from_settings(cls, codenoise, num_frames: int, *, attention: Optional[str] = None,
                      windows_per_call: Optional[int] = None, num_steps: int = 0) -> "CoDenoisePlan":
        """`windows_per_call` resolves the settings' None (from free memory) for the device at hand."""
        extra = {"attention": attention} if attention is not None else {}
        return cls(num_frames=int(num_frames), clip_length=codenoise.clip_length, stride=codenoise.stride,
                   weights=codenoise.weights, loop=codenoise.loop, schedule=codenoise.schedule,
                   windows_per_call=int(codenoise.windows_per_call or windows_per_call or 1),
                   num_steps=int(num_steps), **extra)

    def for_steps(self, num_steps: int) -> "CoDenoisePlan":
        """This plan for a run of `num_steps` steps (itself when it already knows them): samplers call it, so
        a schedule that changes over the run knows where the run ends."""
        if self.num_steps:
            return self
        return replace(self, num_steps=int(num_steps), _windows={}, _weights={})

    def windows_at(self, step: int) -> list[Window]:
        """The clips denoised at denoising step `step` (0 = the first step this run takes)."""
        if step not in self._windows:
            fn = SCHEDULES[self.schedule]
            extra = {"num_steps": self.num_steps} if _takes_num_steps(fn) else {}  # older schedules don't
            self._windows[step] = fn(self.num_frames, self.clip_length, self.stride, step, loop=self.loop,
                                     **extra)
        return self._windows[step]

    def weights_at(self, step: int) -> list[torch.Tensor]:
        """W_i for each window of `windows_at(step)`; one vector per distinct clip length."""
        out = []
        for start, end in self.windows_at(step):
            if end - start not in self._weights:
                self._weights[end - start] = window_weights(self.weights, end - start)
            out.append(self._weights[end - start])
        return out

    def clips_over(self, num_steps: int) -> int:
        """Clips denoised over the first `num_steps` steps, each step counted on its own (moving schedules
        change the count from step to step): what a run costs, for estimates and benchmarks."""
        return sum(len(self.windows_at(k)) for k in range(int(num_steps)))

    def frames_over(self, num_steps: int) -> int:
        """Frames the model denoises over the first `num_steps` steps (clips x M, except where a schedule's
        clips are shorter, as "partitioned"'s end clips are): the UNet work of a run."""
        return sum(end - start for k in range(int(num_steps)) for start, end in self.windows_at(k))

    @property
    def windows(self) -> list[Window]:
        """The first step's windows: what the strip and the estimate show."""
        return self.windows_at(0)
