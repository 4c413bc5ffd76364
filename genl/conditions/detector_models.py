"""Loading the object-mask models: hub id or local folder, offline-aware, with genl.models' `hf download` hint.

GroundingDINO (text -> boxes) and a SAM 2 / SAM 3 tracker (boxes -> masks over time) load through transformers;
the bundled demo detectors (assets/demo-detectors, trained on the shapes world by genl.demo.detectors) load the
same way. Loaded weights are kept between jobs, keyed by (name, device, dtype).
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

import torch

from genl.models import ModelNotAvailable, _from_pretrained, ensure_available, resolve_device, resolve_dtype

NEEDS = "Finding objects from a text prompt needs GroundingDINO (text -> boxes) and SAM 2 (boxes -> masks). "
NEEDS_SAM3 = "Mask method 'sam3' needs SAM 3 (text -> masks over time). "


def _available(name: str, needs: str = NEEDS) -> None:
    try:
        ensure_available(name)
    except ModelNotAvailable as err:
        raise ModelNotAvailable(needs + str(err)) from err

from .detector import GroundingDinoDetector
from .mask_settings import DEFAULT_DETECTOR, DEFAULT_SAM3, DEFAULT_TRACKER
from .sam2_tracker import Sam2VideoSegmenter
from .sam3_text import Sam3TextSegmenter

DEMO_DETECTORS_DIR = Path(__file__).resolve().parents[2] / "assets" / "demo-detectors"
DEMO_DETECTOR = str(DEMO_DETECTORS_DIR / "grounding-dino")
DEMO_TRACKER = str(DEMO_DETECTORS_DIR / "sam2")

_CACHE: dict = {}
_LOCK = threading.Lock()


def demo_detectors_available() -> bool:
    return (Path(DEMO_DETECTOR) / "config.json").exists() and (Path(DEMO_TRACKER) / "config.json").exists()


def demo_detector_settings() -> dict:
    """The mask settings the bundled demo detectors were measured best with (assets/demo-detectors/
    demo_settings.json: a lower box threshold, masks frame by frame), without its "why"."""
    path = DEMO_DETECTORS_DIR / "demo_settings.json"
    if not path.exists():
        return {}
    return {k: v for k, v in json.loads(path.read_text()).items() if k != "why"}


def _preprocessor_sizes(name: str) -> dict:
    """shortest/longest edge of the checkpoint's image processor (GroundingDINO: 800/1333) when it ships one."""
    try:
        if Path(name).exists():
            path = Path(name) / "preprocessor_config.json"
        else:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(name, "preprocessor_config.json", local_files_only=True))
        size = json.loads(path.read_text()).get("size", {})
        return {k: int(size[k]) for k in ("shortest_edge", "longest_edge") if k in size}
    except Exception:
        return {}


def _cached(key, build):
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = build()
        return _CACHE[key]


def load_detector(name: str = "", device: str = "auto", precision: str = "auto") -> GroundingDinoDetector:
    """GroundingDINO (`GroundingDinoForObjectDetection` + its tokenizer) from a hub id or folder."""
    from transformers import AutoTokenizer, GroundingDinoForObjectDetection

    name = name or DEFAULT_DETECTOR
    dev = resolve_device(device)
    dtype = resolve_dtype(precision, dev)

    def build():
        _available(name)
        return (_from_pretrained(GroundingDinoForObjectDetection, name, dtype=dtype).to(dev).eval(),
                _from_pretrained(AutoTokenizer, name))

    model, tokenizer = _cached(("detector", name, str(dev), str(dtype)), build)
    return GroundingDinoDetector(model, tokenizer, **_preprocessor_sizes(name))


def load_tracker(name: str = "", device: str = "auto", precision: str = "auto") -> Sam2VideoSegmenter:
    """SAM 2 video (`Sam2VideoModel`), or SAM 3's tracker (`Sam3TrackerVideoModel`) for a SAM 3 checkpoint."""
    name = name or DEFAULT_TRACKER
    dev = resolve_device(device)
    dtype = resolve_dtype(precision, dev)

    def build():
        import transformers

        _available(name)
        cls = transformers.Sam3TrackerVideoModel if "sam3" in Path(name).name.lower() else transformers.Sam2VideoModel
        return _from_pretrained(cls, name, dtype=dtype).to(dev).eval()

    # a new segmenter (its own session state) per call around the shared weights
    return Sam2VideoSegmenter(_cached(("tracker", name, str(dev), str(dtype)), build))


def load_sam3(name: str = "", device: str = "auto", precision: str = "auto") -> Sam3TextSegmenter:
    """SAM 3's text-prompted video model (`Sam3VideoModel` + its CLIP tokenizer) from a hub id or folder."""
    from transformers import AutoTokenizer, Sam3VideoModel

    name = name or DEFAULT_SAM3
    dev = resolve_device(device)
    dtype = resolve_dtype(precision, dev)

    def build():
        _available(name, NEEDS_SAM3)
        return (_from_pretrained(Sam3VideoModel, name, dtype=dtype).to(dev).eval(), _from_pretrained(AutoTokenizer, name))

    model, tokenizer = _cached(("sam3", name, str(dev), str(dtype)), build)
    return Sam3TextSegmenter(model, tokenizer)


def clear() -> None:
    with _LOCK:
        _CACHE.clear()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


__all__ = ["DEMO_DETECTOR", "DEMO_TRACKER", "ModelNotAvailable", "clear", "demo_detector_settings",
           "demo_detectors_available", "load_detector", "load_sam3", "load_tracker"]
