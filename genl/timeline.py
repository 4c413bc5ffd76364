"""Prompt timelines: which text condition c^i each clip (or frame) gets.

A timeline is either contiguous *segments* (first frame, last frame inclusive, prompt, negative prompt) or
sparse *keyframes* (frame -> prompt), the paper's "sparse conditions". It resolves to a *prompt mix*
over its distinct prompts, (rows, P), so the model side only encodes P prompts once and mixes embeddings:
- a clip inside one segment gets that segment's prompt;
- a clip across a boundary mixes the segments by the share of its frames in each;
- with keyframes, a clip (at its centre) or frame between keyframes k_a < p < k_b gets
  (k_b - p)/(k_b - k_a) c_a + (p - k_a)/(k_b - k_a) c_b: the paper's adjacent interpolation.
This module knows nothing of UNets; `mix_embeddings` works on any tensors.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import torch


@dataclass(frozen=True)
class Segment:
    start: int
    end: int  # inclusive, as people write "0-47"
    prompt: str
    negative: str = ""


@dataclass
class Timeline:
    """Segments xor keyframes, validated against a video length by `validate`."""

    segments: list[Segment] = field(default_factory=list)
    keyframes: dict[int, tuple[str, str]] = field(default_factory=dict)  # frame -> (prompt, negative)

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def single(cls, prompt: str, num_frames: int, negative: str = "") -> "Timeline":
        return cls(segments=[Segment(0, num_frames - 1, prompt, negative)])

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence]) -> "Timeline":
        """Rows of (start, end, prompt[, negative]) as a table editor gives them."""
        segs = []
        for n, row in enumerate(rows, 1):
            if len(row) < 3:
                raise ValueError(f"Timeline row {n} needs a start, an end and a prompt.")
            start, end, prompt = row[0], row[1], row[2]
            negative = row[3] if len(row) > 3 and row[3] is not None else ""
            segs.append(Segment(_as_frame(start, n), _as_frame(end, n), str(prompt or ""), str(negative)))
        return cls(segments=segs)

    @classmethod
    def parse(cls, text: str) -> "Timeline":
        """Text form: "0-47: a jeep on the beach, sunny | 48-95: the jeep at night --neg blurry".

        Entries "a: prompt" (no range) are keyframes. A plain prompt with no frame numbers is one segment
        spanning the whole video (its end is filled in by `validate`).
        """
        text = (text or "").strip()
        if not text:
            raise ValueError("The prompt timeline is empty: write at least one prompt.")
        entries = [e.strip() for e in text.split("|")]
        pattern = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+))?\s*:\s*(.*)$", re.S)
        if len(entries) == 1 and not pattern.match(entries[0]):
            prompt, negative = _split_negative(entries[0])
            return cls(segments=[Segment(0, -1, prompt, negative)])
        segs, keys = [], {}
        for entry in entries:
            m = pattern.match(entry)
            if not m:
                raise ValueError(
                    f"Could not read timeline entry '{entry}'. Write 'first-last: prompt' "
                    "(e.g. '0-47: a cat') or 'frame: prompt' for keyframes, separated by '|'."
                )
            prompt, negative = _split_negative(m.group(3))
            if m.group(2) is None:
                frame = int(m.group(1))
                if frame in keys:
                    raise ValueError(f"Keyframe {frame} is given twice.")
                keys[frame] = (prompt, negative)
            else:
                segs.append(Segment(int(m.group(1)), int(m.group(2)), prompt, negative))
        if segs and keys:
            raise ValueError("Use either ranges ('0-47: ...') or keyframes ('0: ...') in one timeline, not both.")
        return cls(segments=segs, keyframes=keys)

    @classmethod
    def from_json(cls, data: Union[str, Path, dict, list]) -> "Timeline":
        """{"segments": [{"start", "end", "prompt", "negative"}]} or {"keyframes": {"0": "..."}} or a list."""
        if isinstance(data, (str, Path)) and Path(str(data)).suffix == ".json" and Path(str(data)).exists():
            data = json.loads(Path(data).read_text())
        elif isinstance(data, str):
            data = json.loads(data)
        if isinstance(data, list):
            data = {"segments": data}
        if not isinstance(data, dict) or not ({"segments", "keyframes"} & set(data)):
            raise ValueError("A timeline JSON needs a 'segments' list or a 'keyframes' object.")
        segments, keyframes = data.get("segments", []), data.get("keyframes") or {}
        if (not isinstance(segments, list) or not all(isinstance(s, dict) for s in segments)
                or not isinstance(keyframes, dict) or not all(isinstance(v, (str, dict)) for v in keyframes.values())):
            raise ValueError("A timeline JSON needs 'segments' as a list of {\"start\", \"end\", \"prompt\"} objects "
                             "or 'keyframes' as an object of frame: prompt.")
        segs = [
            Segment(_as_frame(s.get("start"), n), _as_frame(s.get("end"), n), str(s.get("prompt", "")),
                    str(s.get("negative", "") or ""))
            for n, s in enumerate(data.get("segments", []), 1)
        ]
        keys = {}
        for k, v in (data.get("keyframes") or {}).items():
            prompt, negative = (v, "") if isinstance(v, str) else (v.get("prompt", ""), v.get("negative", ""))
            keys[_as_frame(k, k)] = (str(prompt), str(negative or ""))
        return cls(segments=segs, keyframes=keys)

    def to_json(self) -> dict:
        if self.keyframes:
            return {"keyframes": {str(k): {"prompt": p, "negative": n} for k, (p, n) in sorted(self.keyframes.items())}}
        return {"segments": [s.__dict__.copy() for s in self.segments]}

    # ---- validation -----------------------------------------------------------------------------
    def validate(self, num_frames: int) -> "Timeline":
        """Check against a video of `num_frames`; returns a copy with an open end (-1) filled in."""
        if num_frames < 1:
            raise ValueError(f"The video length must be at least 1 frame (got {num_frames}).")
        if self.keyframes and self.segments:
            raise ValueError("Use either segments or keyframes in one timeline, not both.")
        if self.keyframes:
            for frame, (prompt, _) in sorted(self.keyframes.items()):
                if not 0 <= frame < num_frames:
                    raise ValueError(f"Keyframe {frame} is outside the video (frames 0 to {num_frames - 1}).")
                _check_prompt(prompt, f"keyframe {frame}")
            return Timeline(keyframes=dict(sorted(self.keyframes.items())))
        if not self.segments:
            raise ValueError("The prompt timeline is empty: add at least one row with a prompt.")
        segs = sorted(self.segments, key=lambda s: s.start)
        if len(segs) == 1 and segs[0].end == -1:
            segs = [Segment(segs[0].start, num_frames - 1, segs[0].prompt, segs[0].negative)]
        expected = 0
        for s in segs:
            _check_prompt(s.prompt, f"frames {s.start}-{s.end}")
            if s.end < s.start:
                raise ValueError(f"Segment {s.start}-{s.end} ends before it starts.")
            if s.start > expected:
                raise ValueError(f"{_frames(expected, s.start - 1)} no prompt: the timeline has a gap there.")
            if s.start < expected:
                raise ValueError(
                    f"Segment {s.start}-{s.end} overlaps the one before it (which ends at frame {expected - 1})."
                )
            if s.end >= num_frames:
                raise ValueError(
                    f"Segment {s.start}-{s.end} goes past the end of the video (last frame is {num_frames - 1})."
                )
            expected = s.end + 1
        if expected != num_frames:
            raise ValueError(f"{_frames(expected, num_frames - 1)} no prompt: the timeline stops early.")
        return Timeline(segments=segs)

    # ---- resolution to prompt mixes -----------------------------------------------------------
    def prompts(self) -> list[tuple[str, str]]:
        """Distinct (prompt, negative) pairs in timeline order; columns of the weight matrices."""
        items = [(s.prompt, s.negative) for s in self.segments] or list(self.keyframes.values())
        return list(dict.fromkeys(items))

    def frame_prompt_mix(self, num_frames: int, transition: int = 0) -> torch.Tensor:
        """(num_frames, P) prompt mix per frame, rows summing to 1.

        Segments: a frame takes its segment's prompt; `transition` > 0 blends linearly over that many
        frames centred on each boundary, for soft changes. Keyframes: linear interpolation between them.
        """
        tl = self.validate(num_frames)
        cols = {pn: i for i, pn in enumerate(tl.prompts())}
        out = torch.zeros(num_frames, len(cols), dtype=torch.float64)
        if tl.keyframes:
            for f in range(num_frames):
                out[f] = _keyframe_row(tl.keyframes, cols, f)
            return out.float()
        for s in tl.segments:
            out[s.start:s.end + 1, cols[(s.prompt, s.negative)]] = 1.0
        if transition > 0:
            kernel = torch.ones(1, 1, int(transition) + (1 - int(transition) % 2), dtype=torch.float64)
            kernel /= kernel.sum()
            pad = kernel.shape[-1] // 2
            padded = torch.nn.functional.pad(out.T.unsqueeze(1), (pad, pad), mode="replicate")
            out = torch.nn.functional.conv1d(padded, kernel).squeeze(1).T
        return out.float()

    def clip_prompt_mix(self, windows: Sequence[tuple[int, int]], num_frames: int) -> torch.Tensor:
        """(len(windows), P) prompt mix per clip: segments by share of the clip's frames, keyframes by the
        clip's centre. (Not the fusion weights W_i: those are `codenoise.window_weights`.)"""
        tl = self.validate(num_frames)
        cols = {pn: i for i, pn in enumerate(tl.prompts())}
        out = torch.zeros(len(windows), len(cols), dtype=torch.float64)
        for w, (start, end) in enumerate(windows):
            if tl.keyframes:
                centre = ((start + end - 1) / 2.0) % num_frames
                out[w] = _keyframe_row(tl.keyframes, cols, centre)
                continue
            frames = [f % num_frames for f in range(start, end)]
            for s in tl.segments:
                inside = sum(1 for f in frames if s.start <= f <= s.end)
                out[w, cols[(s.prompt, s.negative)]] += inside / len(frames)
        return out.float()


def mix_embeddings(embeddings: torch.Tensor, weights: torch.Tensor, mode: str = "linear") -> torch.Tensor:
    """Mix P prompt embeddings (P, ...) with rows of weights (R, P) -> (R, ...).

    linear: the paper's weighted sum. slerp: spherical interpolation (per token), applied pairwise in
    timeline order, which keeps the embedding norm of CLIP features that a linear blend shrinks.
    """
    w = weights.to(device=embeddings.device, dtype=torch.float32)
    emb = embeddings.float()
    if mode == "linear":
        return torch.einsum("rp,p...->r...", w, emb).to(embeddings.dtype)
    if mode != "slerp":
        raise ValueError(f"Unknown interpolation '{mode}'. Choose 'linear' or 'slerp'.")
    rows = []
    for row in w:
        nz = [int(i) for i in torch.nonzero(row > 0).flatten()]
        acc, acc_w = emb[nz[0]], float(row[nz[0]])
        for i in nz[1:]:
            frac = float(row[i]) / (acc_w + float(row[i]))
            acc, acc_w = slerp(acc, emb[i], frac), acc_w + float(row[i])
        rows.append(acc)
    return torch.stack(rows).to(embeddings.dtype)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation along the last dim; falls back to linear for near-parallel vectors."""
    an, bn = a / (a.norm(dim=-1, keepdim=True) + eps), b / (b.norm(dim=-1, keepdim=True) + eps)
    dot = (an * bn).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.arccos(dot)
    so = torch.sin(omega)
    lin = (1 - t) * a + t * b
    sph = (torch.sin((1 - t) * omega) / so.clamp_min(eps)) * a + (torch.sin(t * omega) / so.clamp_min(eps)) * b
    return torch.where(so.abs() < 1e-4, lin, sph)


def _keyframe_row(keyframes: dict, cols: dict, position: float) -> torch.Tensor:
    row = torch.zeros(len(cols), dtype=torch.float64)
    frames = sorted(keyframes)
    if position <= frames[0]:
        row[cols[keyframes[frames[0]]]] = 1.0
        return row
    if position >= frames[-1]:
        row[cols[keyframes[frames[-1]]]] += 1.0
        return row
    for a, b in zip(frames, frames[1:]):
        if a <= position <= b:
            frac = (position - a) / (b - a)
            row[cols[keyframes[a]]] += 1.0 - frac
            row[cols[keyframes[b]]] += frac
            return row
    return row


def _frames(first: int, last: int) -> str:
    return f"Frame {first} has" if first == last else f"Frames {first}-{last} have"


def _split_negative(text: str) -> tuple[str, str]:
    prompt, _, negative = text.partition("--neg")
    return prompt.strip(), negative.strip()


def _check_prompt(prompt: str, where: str) -> None:
    if not prompt or not prompt.strip():
        raise ValueError(f"The prompt for {where} is empty: describe what should be seen there.")


def _as_frame(value, where) -> int:
    try:
        frame = int(float(value))
    except (TypeError, ValueError):
        raise ValueError(f"Timeline row {where}: '{value}' is not a frame number.") from None
    if frame < 0 and frame != -1:
        raise ValueError(f"Timeline row {where}: frame numbers cannot be negative (got {frame}).")
    return frame


def seconds_to_frame(seconds: float, fps: float) -> int:
    """Frame index at a time in seconds (rounded), for timelines edited in seconds."""
    if seconds < 0:
        raise ValueError(f"Times cannot be negative (got {seconds} s).")
    return int(round(float(seconds) * float(fps)))


def load_timeline(value: Optional[str]) -> Timeline:
    """CLI helper: a path to a .json file, JSON text, or the text form."""
    if value is None:
        raise ValueError("No prompt given.")
    path = Path(value)
    if value.strip().endswith(".json"):
        if not path.exists():
            raise ValueError(f"Timeline file '{value}' does not exist.")
        return Timeline.from_json(path)
    if value.strip().startswith(("{", "[")):
        return Timeline.from_json(value)
    return Timeline.parse(value)
