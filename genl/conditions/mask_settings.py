"""Settings of object-prompted masks, written once: the edit job, the mask preview and the CLI share them."""
from __future__ import annotations

from dataclasses import asdict, dataclass

DEFAULT_DETECTOR = "IDEA-Research/grounding-dino-tiny"
DEFAULT_TRACKER = "facebook/sam2.1-hiera-tiny"
DEFAULT_SAM3 = "facebook/sam3"
METHODS = ("auto", "grounded_sam2", "sam3", "colour", "upload")
INSTANCES = ("largest", "all", "index")


@dataclass
class MaskSettings:
    """How an object prompt becomes one mask per frame.

    method: 'grounded_sam2' (GroundingDINO boxes on keyframes, SAM 2 video propagation; `tracker` may name a
    SAM 3 checkpoint, whose Sam3TrackerVideoModel has the same session API), 'sam3' (SAM 3's own text-prompted
    video segmentation, `Sam3VideoModel`: `detector` names its checkpoint, '' = DEFAULT_SAM3; it applies its own
    detection thresholds and uses instance, mask threshold and chunk), 'colour' (shapes-world fallback,
    labelled), 'upload' (a mask video the user gives), 'auto' (grounded_sam2 with the real models, or with the
    bundled demo detectors for the demo model).
    """
    method: str = "auto"
    detector: str = ""              # hub id or folder; '' = DEFAULT_DETECTOR (or the demo detector; DEFAULT_SAM3 for 'sam3')
    tracker: str = ""               # hub id or folder; '' = DEFAULT_TRACKER (or the demo tracker)
    box_threshold: float = 0.35     # GroundingDINO's defaults for its tiny checkpoint
    text_threshold: float = 0.25
    instance: str = "largest"       # largest | all | index
    index: int = 0                  # with instance='index': 0 = highest score
    keyframe_every: int = 8         # K: detect on frame 0 and every K frames
    redetect_below: float = 0.5     # re-detect where the tracker's object score drops under this
    mask_threshold: float = 0.5     # SAM's mask probability threshold (its logit threshold 0)
    propagate: bool = True          # False: detect + segment every frame on its own (flickers more)
    dilate: int = 2                 # px the mask grows, to cover the object's soft edge
    feather: float = 1.5            # px Gaussian sigma of the soft mask's edge (0 = hard)
    chunk: int = 32                 # frames per tracker session: bounds memory on long videos
    upload: str = ""                # method 'upload': path of a mask video (white = edit)
    device: str = "auto"

    def validate(self) -> "MaskSettings":
        if self.method not in METHODS:
            raise ValueError(f"Unknown mask method '{self.method}'. Choose one of: {', '.join(METHODS)}.")
        if self.instance not in INSTANCES:
            raise ValueError(f"Unknown instance choice '{self.instance}'. Choose one of: {', '.join(INSTANCES)}.")
        for name in ("box_threshold", "text_threshold", "redetect_below", "mask_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"The {name.replace('_', ' ')} must lie between 0 and 1, got {getattr(self, name)}.")
        if self.keyframe_every < 1 or self.chunk < 2:
            raise ValueError("Detect at least every frame (keyframe every >= 1) and track at least 2 frames a chunk.")
        if self.index < 0 or self.dilate < 0 or self.feather < 0:
            raise ValueError("Instance index, dilation and feather cannot be negative.")
        if self.method == "upload" and not self.upload:
            raise ValueError("Upload a mask video (white where the edit may change the video) or pick another method.")
        return self

    def key(self) -> dict:
        """What the masks depend on (for the cache): everything but the device."""
        return {k: v for k, v in asdict(self).items() if k != "device"}
