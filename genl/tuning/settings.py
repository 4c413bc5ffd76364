"""TuneSettings: one-shot tuning on a long video (paper Sec. 4 and 5), defaults written once here.

Paper defaults: lr 3e-5 scaled by the batch size, batch 5, ~100 epochs for a ~100-frame video, clips of
M=16 frames with stride S=4. Our additions: LoRA by default (fits a 16x512x512 clip in a consumer GPU),
identifier dropout (the paper drops e^i at random; the rate is ours: 0.1, as a Tune-A-Video-style
regulariser, since 0 and 0.1 measured the same in bench/results/tuning_demo.json, see README "One-shot
tuning"), and early stopping when the epoch loss stops improving.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Optional

METHODS = ("lora", "full")
PRECISIONS = ("auto", "fp16", "bf16", "fp32")
OPTIMIZERS = ("adamw", "adamw8bit")
DEFAULT_STORE = "outputs/tunings"  # where `python -m genl tune` keeps tunings (the studio: private/tunings)


@dataclass
class TuneSettings:
    """Everything that decides the tuned weights; two runs with equal settings on one video share them."""

    kind = "tune"
    video: str = ""
    start: float = 0.0  # trim, seconds (part of the key: other frames make other weights)
    end: Optional[float] = None
    prompt: str = ""  # the source video's timeline ("0-47: ... | 48-95: ..."), c^i per clip
    model: str = "demo"
    clip_length: int = 16  # M
    stride: int = 4  # S
    width: int = 512
    height: int = 512
    fps: float = 8.0
    max_frames: int = 256
    method: str = "lora"  # lora: LoRA on attn1 Q/K/V/out + attn2 Q; full: Tune-A-Video's attn1.Q, attn2.Q
    lora_rank: int = 16
    temporal_layers: bool = True  # Tune-A-Video's added temporal attention (trained fully in both methods)
    learning_rate: float = 3e-5  # per clip in the batch (scaled by batch_size when scale_lr)
    scale_lr: bool = True
    identifier_lr: float = 1e-3  # the e^i are new embeddings, like textual inversion they need a larger lr
    identifier_tokens: int = 1  # tokens per e^i appended to the text states
    # Chance that a clip trains without its e^i (and learns from c^i alone). 0.1 is a regulariser choice:
    # 0 and 0.1 gave the same trajectory error in the demo world (bench/results/tuning_demo.json).
    identifier_dropout: float = 0.1
    batch_size: int = 5
    epochs: int = 100
    max_steps: Optional[int] = None  # cap on optimiser steps (None: epochs decide)
    plateau_patience: int = 15  # epochs without a relative gain of plateau_delta -> stop (0: never)
    plateau_delta: float = 0.02
    checkpoint_every: int = 100  # steps
    precision: str = "auto"  # autocast dtype: bf16 on GPUs, fp32 on CPUs
    gradient_checkpointing: bool = True
    optimizer: str = "adamw"  # adamw8bit needs bitsandbytes and a CUDA GPU
    seed: int = 0
    device: str = "auto"
    store_dir: str = ""  # folder of tunings (the studio's private/tunings); empty: DEFAULT_STORE

    def validate(self) -> None:
        if not self.video:
            raise ValueError("No video given: upload the video to tune on.")
        if not (self.prompt or "").strip():
            raise ValueError("The prompt is empty: describe what the video shows (a timeline for several scenes).")
        if self.method not in METHODS:
            raise ValueError(f"Unknown tuning method '{self.method}'. Choose one of: {', '.join(METHODS)}.")
        if self.precision not in PRECISIONS:
            raise ValueError(f"Unknown precision '{self.precision}'. Choose one of: {', '.join(PRECISIONS)}.")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Unknown optimiser '{self.optimizer}'. Choose one of: {', '.join(OPTIMIZERS)}.")
        if self.clip_length < 2 or self.stride < 1 or self.stride > self.clip_length:
            raise ValueError(f"Clips need at least 2 frames and a stride between 1 and the clip length "
                             f"(got M={self.clip_length}, S={self.stride}).")
        for name in ("width", "height"):
            v = getattr(self, name)
            if v < 32 or v > 2048 or v % 8:
                raise ValueError(f"The {name} must be a multiple of 8 between 32 and 2048 (got {v}).")
        if not 1 <= self.batch_size <= 64:
            raise ValueError(f"The batch size must be between 1 and 64 clips (got {self.batch_size}).")
        if self.epochs < 1 or (self.max_steps is not None and self.max_steps < 1):
            raise ValueError("Train for at least one epoch and one step.")
        if not 0.0 <= self.identifier_dropout < 1.0:
            raise ValueError(f"Identifier dropout must be at least 0 and below 1 (got {self.identifier_dropout}).")
        if self.identifier_tokens < 0 or self.identifier_tokens > 8:
            raise ValueError(f"Use 0 to 8 identifier tokens per clip (got {self.identifier_tokens}).")
        if self.learning_rate <= 0 or self.identifier_lr < 0:
            raise ValueError("Learning rates must be positive.")
        if self.method == "lora" and not 1 <= self.lora_rank <= 256:
            raise ValueError(f"The LoRA rank must be between 1 and 256 (got {self.lora_rank}).")
        if self.checkpoint_every < 1:
            raise ValueError("Save a checkpoint at least every so many steps (checkpoint_every >= 1).")
        if self.start < 0 or (self.end is not None and self.end <= self.start):
            raise ValueError("The trim end must come after the trim start (both in seconds, start at least 0).")
        if self.fps <= 0 or self.max_frames < self.clip_length:
            raise ValueError("The frame rate must be positive and the frame limit at least one clip long.")

    def lr(self) -> float:
        """The paper's rule: the base rate scaled up by the batch size."""
        return self.learning_rate * (self.batch_size if self.scale_lr else 1)

    def weights_key(self) -> dict:
        """Settings that change the tuned weights (not where they run, nor when they are saved)."""
        skip = {"device", "checkpoint_every", "video", "store_dir"}
        return {k: v for k, v in asdict(self).items() if k not in skip}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kind"] = self.kind
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "TuneSettings":
        data = dict(data)
        data.pop("kind", None)
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"Unknown tuning settings: {', '.join(sorted(unknown))}.")
        return cls(**data)
