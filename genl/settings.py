"""Job settings as small dataclasses with the paper's defaults, validated in one place.

A settings object is plain data (JSON round-trips through `to_dict`/`from_dict`), so a job can be queued,
stored, shown and re-run exactly. `validate()` raises ValueError with a message a person can act on.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Optional

from .codenoise import WEIGHT_SCHEMES, make_windows
from .conditions.mask_settings import MaskSettings
from .timeline import Timeline, load_timeline
from .tuning.settings import TuneSettings

SCHEDULERS = ("ddim", "dpm++", "euler", "euler_a", "unipc", "lcm")
PRECISIONS = ("auto", "fp16", "bf16", "fp32")
FUSIONS = ("output", "motion")  # where clips are fused: model outputs, or inside motion modules (AnimateDiff)
ATTENTION = "bidirectional"  # the paper's cross-frame attention for image models (genl/attention.py MODES)


@dataclass
class CoDenoiseSettings:
    """M, S and the fusion weights W_i (paper: M=16, S=4; S=M means isolated clips)."""

    clip_length: int = 16
    stride: int = 4
    weights: str = "flat"
    loop: bool = False
    windows_per_call: Optional[int] = None  # None: from free GPU memory
    interpolation: str = "linear"  # how clips across prompt changes mix text embeddings
    transition_frames: int = 0  # soft prompt change width for per-frame conditioning
    schedule: str = "fixed"  # which windows each step denoises (genl/plan.py SCHEDULES)
    fusion: str = "output"  # fuse model outputs per clip, or "motion": inside AnimateDiff's motion modules

    def validate(self, num_frames: int) -> None:
        from .plan import SCHEDULES

        if self.schedule not in SCHEDULES:
            raise ValueError(f"Unknown window schedule '{self.schedule}'. Choose one of: {', '.join(SCHEDULES)}.")
        if self.weights not in WEIGHT_SCHEMES:
            raise ValueError(f"Unknown fusion weights '{self.weights}'. Choose one of: {', '.join(WEIGHT_SCHEMES)}.")
        if self.interpolation not in ("linear", "slerp"):
            raise ValueError("Prompt interpolation must be 'linear' or 'slerp'.")
        if self.fusion not in FUSIONS:
            raise ValueError(f"Unknown fusion '{self.fusion}'. Choose one of: {', '.join(FUSIONS)}.")
        make_windows(num_frames, self.clip_length, self.stride, loop=self.loop)
        SCHEDULES[self.schedule](num_frames, self.clip_length, self.stride, 0, loop=self.loop)


class _Data:
    """JSON both ways: `to_dict` carries the class's `kind`, `from_dict` refuses unknown fields."""

    kind = ""

    def to_dict(self) -> dict:
        d = asdict(self)  # ControlSpecs in `controls` become dicts too
        d["kind"] = self.kind
        return d

    @classmethod
    def from_dict(cls, data: dict):
        data = dict(data)
        data.pop("kind", None)
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names - ({"mask_method"} if "masks" in names else set())
        if unknown:
            raise ValueError(f"Unknown settings: {', '.join(sorted(unknown))}.")
        if isinstance(data.get("codenoise"), dict):
            data["codenoise"] = CoDenoiseSettings(**data["codenoise"])
        if "masks" in names:
            data["masks"] = _mask_settings(data.get("masks"), data.pop("mask_method", None))
        return cls(**data)


@dataclass
class _Common(_Data):
    prompt: str = ""  # a timeline in text form, JSON text, or a .json path
    negative_prompt: str = ""
    num_frames: int = 64
    width: int = 512
    height: int = 512
    fps: float = 8.0
    steps: int = 50
    guidance: float = 7.5
    scheduler: str = "ddim"
    seed: int = 0
    model: str = "demo"
    precision: str = "auto"
    device: str = "auto"
    max_frames: int = 1024
    codenoise: CoDenoiseSettings = field(default_factory=CoDenoiseSettings)

    def timeline(self) -> Timeline:
        tl = load_timeline(self.prompt)
        if self.negative_prompt and tl.segments:
            tl.segments = [s if s.negative else type(s)(s.start, s.end, s.prompt, self.negative_prompt)
                           for s in tl.segments]
        return tl.validate(self.num_frames)

    def validate(self) -> Timeline:
        if not (self.prompt or "").strip():
            raise ValueError("The prompt is empty: describe the video you want.")
        if self.num_frames < 1:
            raise ValueError(f"The video length must be at least 1 frame (got {self.num_frames}).")
        if self.num_frames > self.max_frames:
            raise ValueError(
                f"{self.num_frames} frames is above this studio's limit of {self.max_frames} frames. "
                "Make the video shorter or raise --max-frames."
            )
        for name in ("width", "height"):
            v = getattr(self, name)
            if v < 32 or v > 2048 or v % 8:
                raise ValueError(f"The {name} must be a multiple of 8 between 32 and 2048 (got {v}).")
        if not 1 <= self.steps <= 1000:
            raise ValueError(f"Steps must be between 1 and 1000 (got {self.steps}).")
        if self.guidance < 0:
            raise ValueError(f"Guidance must not be negative (got {self.guidance}).")
        if self.fps <= 0 or self.fps > 120:
            raise ValueError(f"Frames per second must be between 0 and 120 (got {self.fps}).")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"Unknown scheduler '{self.scheduler}'. Choose one of: {', '.join(SCHEDULERS)}.")
        if self.precision not in PRECISIONS:
            raise ValueError(f"Unknown precision '{self.precision}'. Choose one of: {', '.join(PRECISIONS)}.")
        self.codenoise.validate(self.num_frames)
        return self.timeline()  # the validated timeline, so a job checks it once


@dataclass
class GenerateSettings(_Common):
    """Text -> long video. pipeline: 'animatediff' (text-to-video model) or 'tuning_free' (image model)."""

    kind = "generate"
    pipeline: str = "animatediff"
    motion_adapter: str = ""  # AnimateDiff motion module; empty means the model's default
    attention: str = ATTENTION  # cross-frame attention for image models
    motion: tuple = (0.0, 0.0)  # tuning-free: latent pixels the shared noise moves per frame (dx, dy)
    noise_share: float = 0.0  # animatediff: share of the starting noise common to all frames (steadier, less motion)
    control: str = ""  # '' or 'edges': follow the edges of `control_video` (tuning-free, with a ControlNet)
    control_video: str = ""
    controlnet: str = ""  # ControlNet model (hub id, folder, or 'demo'); empty: the model's default
    control_scale: float = 1.0
    controls: list = field(default_factory=list)  # ControlSpec dicts (pose/depth/edges); see `control_specs`

    def validate(self) -> Timeline:
        timeline = super().validate()
        if self.pipeline not in ("animatediff", "tuning_free"):
            raise ValueError("The generator must be 'animatediff' or 'tuning_free'.")
        if not 0.0 <= self.noise_share <= 1.0:  # also catches NaN
            raise ValueError(f"The shared noise must be between 0 and 1 (got {self.noise_share}).")
        if self.noise_share and self.pipeline != "animatediff":
            raise ValueError("Shared noise is a setting of the animatediff generator: the tuning-free one always "
                             "starts every frame from the same noise. Set it to 0 or pick animatediff.")
        if self.pipeline == "animatediff":
            from .plan import require_full_length_clips

            require_full_length_clips(self.codenoise.schedule)
        elif self.codenoise.fusion == "motion":
            raise ValueError("Fusion inside the motion modules works with text-to-video models only: pick the "
                             "animatediff generator, or fuse the model outputs for the tuning-free one.")
        specs = control_specs(self)
        if specs and self.pipeline != "tuning_free":
            raise ValueError("Pose / edge / depth control works with the tuning-free (image model) generator.")
        if any(not s.video for s in specs) and not self.control_video:
            raise ValueError("Control needs a reference video: upload the video whose pose, edges or depth to "
                             "follow, or a ready control video for each control.")
        return timeline


@dataclass
class EditSettings(_Common):
    """Tuning-free editing of an uploaded video: invert with the source prompt, resample with the target."""

    kind = "edit"
    video: str = ""
    source_prompt: str = ""
    start: float = 0.0  # seconds
    end: Optional[float] = None
    attention: str = ATTENTION
    inversion_steps: Optional[int] = None  # default: same as steps
    smoothness: float = 0.0  # Pix2Video-style adjacent-frame distance penalty strength (0 = off)
    strength: float = 1.0  # fraction of the schedule to invert and resample (1 = full)
    cache_dir: str = ""
    mask_object: str = ""  # edit anything: only this object changes ('' edits the whole frame)
    masks: MaskSettings = field(default_factory=MaskSettings)  # how mask_object becomes masks (or an upload)
    control: str = ""  # '' or 'edges': keep the source video's edges (with a ControlNet)
    controlnet: str = ""
    control_scale: float = 1.0
    # One-shot tuning (genl/tuning): a saved tuning's folder or key; the edit then samples the tuned model
    # (genl/pipelines/tuned.py), from the video's inversion or from random noise, with or without e^i.
    tuned: str = ""
    use_identifiers: bool = True
    from_noise: bool = False

    controls: list = field(default_factory=list)  # ControlSpec dicts: keep the source's pose/depth/edges

    def validate(self) -> None:
        control_specs(self)
        if not self.video and not (self.tuned and self.from_noise):
            raise ValueError("No video given: upload the video to edit.")
        if self.from_noise and not self.tuned:
            raise ValueError("Starting from random noise needs a tuned model: pick a saved tuning.")
        if self.tuned:
            from .plan import require_full_length_clips

            require_full_length_clips(self.codenoise.schedule)
        if not self.tuned and not (self.source_prompt or "").strip():
            raise ValueError("The source prompt is empty: describe what the uploaded video shows.")
        if not 0.0 < self.strength <= 1.0:
            raise ValueError(f"Edit strength must be above 0 and at most 1 (got {self.strength}).")
        if self.smoothness < 0:
            raise ValueError("Smoothness must not be negative.")
        if self.masked:
            self.masks.validate()
        return super().validate()

    @property
    def masked(self) -> bool:
        """Edit anything: only inside an object's masks (named by mask_object, or an uploaded mask video)."""
        return bool((self.mask_object or "").strip()) or self.masks.method == "upload"


def _mask_settings(masks, old_method: Optional[str]) -> MaskSettings:
    """MaskSettings from JSON; jobs stored before it existed carry only `mask_method` ('grounded_sam' then)."""
    if isinstance(masks, MaskSettings):
        return masks
    masks = MaskSettings(**masks) if isinstance(masks, dict) else MaskSettings()
    if old_method and masks.method == MaskSettings.method:
        masks.method = {"grounded_sam": "grounded_sam2"}.get(old_method, old_method)
    return masks


def control_specs(settings) -> list:
    """The job's controls as validated ControlSpecs: `controls` (dicts or ControlSpecs), plus the old single
    edges control (control/controlnet/control_scale) as one more entry, so jobs stored before keep running."""
    from .controlnets import ControlSpec

    if settings.control not in ("", "edges"):
        raise ValueError(f"Unknown control '{settings.control}'. Available: edges.")
    if not isinstance(settings.controls, (list, tuple)):
        raise ValueError("`controls` must be a list of controls (type, model, strength, start, end, video).")
    specs = []
    for c in settings.controls:
        if isinstance(c, dict):
            unknown = set(c) - {f.name for f in fields(ControlSpec)}
            if unknown:
                raise ValueError(f"Unknown control settings: {', '.join(sorted(unknown))}.")
            c = ControlSpec(**c)
        specs.append(c)
    if settings.control:
        specs.append(ControlSpec(type="edges", model=settings.controlnet, strength=settings.control_scale))
    from .validation import MAX_CONTROLS

    if len(specs) > MAX_CONTROLS:
        raise ValueError(f"At most {MAX_CONTROLS} controls can steer one video (e.g. pose + depth + edges); "
                         f"got {len(specs)}.")
    for spec in specs:
        spec.validate()
        if spec.strength > 2.0:
            raise ValueError(f"{spec.type} control: strength must be between 0 and 2 (got {spec.strength}).")
    return specs


@dataclass
class _VideoPreview(_Data):
    """A light job: a few sampled frames of a (trimmed) video turned into what a job would condition on."""

    video: str = ""
    fps: Optional[float] = None  # None: the file's own rate
    start: float = 0.0
    end: Optional[float] = None
    width: Optional[int] = None  # None: the file's size
    height: Optional[int] = None
    samples: int = 4
    max_frames: int = 1024
    model: str = "demo"

    def validate(self) -> None:
        if not self.video:
            raise ValueError("Upload a video first.")
        if not 1 <= self.samples <= 64:
            raise ValueError(f"A preview shows between 1 and 64 frames (got {self.samples}).")
        if (self.width is None) != (self.height is None):
            raise ValueError("Give both a width and a height for the preview, or neither.")

    @property
    def size(self):
        return (int(self.width), int(self.height)) if self.width and self.height else None


@dataclass
class MaskPreviewSettings(_VideoPreview):
    """Edit anything: the masks of `object_prompt` on a few frames, made as the edit job will make them."""

    kind = "mask_preview"
    object_prompt: str = ""
    masks: MaskSettings = field(default_factory=MaskSettings)
    cache_dir: str = ""  # the studio's private cache: the edit job then reuses the masks the preview made

    def validate(self) -> None:
        super().validate()
        self.masks.validate()


@dataclass
class EdgePreviewSettings(_VideoPreview):
    """Edge control: the Canny edge maps of a few frames of the reference video."""

    kind = "edge_preview"


@dataclass
class ControlPreviewSettings(_VideoPreview):
    """Pose / depth / edge control: the whole (trimmed) video's control maps (cached for the job that follows),
    a side-by-side strip of a few frames over their maps, and the maps as a video to download."""

    kind = "control_preview"
    type: str = "pose"
    detector: str = ""

    def validate(self) -> None:
        from .controlnets import ControlSpec

        super().validate()
        ControlSpec(type=self.type, detector=self.detector).validate()


SETTINGS = {cls.kind: cls for cls in (GenerateSettings, EditSettings, MaskPreviewSettings, EdgePreviewSettings,
                                      ControlPreviewSettings, TuneSettings)}


def settings_from_dict(data: dict):
    """The settings class named by data['kind'] (a key of SETTINGS)."""
    kind = data.get("kind")
    if kind not in SETTINGS:
        raise ValueError(f"Unknown job kind '{kind}'. Expected one of: {', '.join(SETTINGS)}.")
    return SETTINGS[kind].from_dict(data)
