"""The one place that knows hub ids, local folders, single-file checkpoints, devices and dtypes.

Loading is offline-aware: a model already on disk loads without touching the network; a model that is not,
while the hub is unreachable, fails at once with a message that says how to get it (no retry loops).
"""
from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

import torch

DEFAULT_SD = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_MOTION_ADAPTER = "guoyww/animatediff-motion-adapter-v1-5-2"
DEMO_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo-model"
DEMO_CONTROLNET_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo-controlnet"
DEMO_POSE_CONTROLNET_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo-pose-controlnet"
DEMO_POSE_NAME = "demo-pose"
# control maps -> the SD-1.5 ControlNet trained on them, and the detector that makes them
DEFAULT_CONTROLNETS = {"edges": "lllyasviel/control_v11p_sd15_canny", "pose": "lllyasviel/control_v11p_sd15_openpose",
                       "depth": "lllyasviel/control_v11f1p_sd15_depth"}
DEFAULT_DEPTH = "depth-anything/Depth-Anything-V2-Small-hf"
DEMO_NAME = "demo"
DEMO_NOTICE = "demo model: synthetic shapes world (a tiny model trained by this project; not Stable Diffusion)"


class ModelNotAvailable(ValueError):
    """A model that is neither on disk nor downloadable right now."""


def resolve_device(device: str = "auto") -> torch.device:
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("A CUDA GPU was requested but none is available here. Use --device cpu.")
    return dev


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """fp16 on GPUs by default (bf16 on request), fp32 on CPUs, where half precision is slow or unsupported."""
    if precision in ("auto", None, ""):
        return torch.float16 if device.type == "cuda" else torch.float32
    table = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
    if precision not in table:
        raise ValueError(f"Unknown precision '{precision}'. Choose auto, fp16, bf16 or fp32.")
    if device.type == "cpu" and precision == "fp16":
        raise ValueError("fp16 is not supported on the CPU; use fp32 or bf16.")
    return table[precision]


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the Hugging Face Hub answers a TCP connect within `timeout` (False when HF_HUB_OFFLINE)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = urlparse(endpoint).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def how_to_get(model: str) -> str:
    return (
        f"The model '{model}' is not on this machine and the Hugging Face Hub cannot be reached. "
        f"On a computer with internet run `hf download {model}` and copy its cache folder "
        "(~/.cache/huggingface/hub) here, or download the model to a folder and give that folder's path "
        f"instead. The bundled demo model works offline: choose '{DEMO_NAME}'."
    )


def hub_file(repo: str, filename: str) -> str:
    """Local path of one file of a hub repo (e.g. OpenPose's body_pose_model.pth in lllyasviel/Annotators):
    from the hub cache, else downloaded when the hub answers, else a ModelNotAvailable that says how to get it."""
    from huggingface_hub import hf_hub_download

    try:
        return hf_hub_download(repo, filename, local_files_only=True)
    except Exception as err:
        if not hub_reachable():
            raise ModelNotAvailable(
                f"'{filename}' of '{repo}' is not on this machine and the Hugging Face Hub cannot be reached. "
                f"On a computer with internet run `hf download {repo} {filename}` and copy its cache folder "
                "(~/.cache/huggingface/hub) here, or give the folder that holds the file instead.") from err
    return hf_hub_download(repo, filename)


def controlnet_source(name: str) -> str:
    """'demo' -> the bundled edge ControlNet, 'demo-pose' -> the bundled pose one; else a folder or hub id."""
    if name == DEMO_NAME:
        return str(DEMO_CONTROLNET_DIR)
    if name == DEMO_POSE_NAME:
        if not (DEMO_POSE_CONTROLNET_DIR / "config.json").exists():
            raise ModelNotAvailable("The bundled demo pose ControlNet is missing from assets/demo-pose-controlnet.")
        return str(DEMO_POSE_CONTROLNET_DIR)
    return name


def load_controlnet(name: str, dtype: torch.dtype = torch.float32):
    """A ControlNetModel from 'demo', 'demo-pose', a folder or a hub id, offline-aware."""
    from diffusers import ControlNetModel

    return _from_pretrained(ControlNetModel, controlnet_source(name), dtype=dtype)


def model_kind(path: str) -> Optional[str]:
    """'animatediff', 'sd' or None for a local diffusers folder, from its model_index.json."""
    index = Path(path) / "model_index.json"
    if not index.exists():
        return None
    name = json.loads(index.read_text()).get("_class_name", "")
    if name == "TextToVideoSDPipeline":  # ModelScope / zeroscope (UNet3DConditionModel)
        return "unet3d"
    return "animatediff" if "AnimateDiff" in name else "sd"


def _from_pretrained(cls, model: str, **kwargs):
    """Load from a local folder or the hub cache; download only when the hub is reachable."""
    if Path(model).exists():
        return cls.from_pretrained(model, local_files_only=True, **kwargs)
    ensure_available(model)
    try:
        return cls.from_pretrained(model, local_files_only=True, **kwargs)
    except (OSError, ValueError, EnvironmentError) as err:
        if not hub_reachable():
            raise ModelNotAvailable(how_to_get(model)) from err
    return cls.from_pretrained(model, **kwargs)


def ensure_available(model: str) -> None:
    """Fail fast, naming `model`, when it is neither a folder, nor in the hub cache, nor downloadable."""
    if Path(model).exists() or _in_hub_cache(model):
        return
    if not hub_reachable():
        raise ModelNotAvailable(how_to_get(model))


def load_sd_components(model: str, dtype: torch.dtype, config: Optional[str] = None) -> dict:
    """vae, text_encoder, tokenizer, unet, scheduler of an SD-1.x/2.x model (folder, hub id, or .safetensors)."""
    from diffusers import StableDiffusionPipeline

    model = resolve_model_path(model)
    if has_image_unet(model):
        return _image_components_of_animatediff(model, dtype)
    kwargs = dict(dtype=dtype, safety_checker=None, requires_safety_checker=False)
    if model.endswith((".safetensors", ".ckpt")):
        if not Path(model).exists():
            raise ModelNotAvailable(f"The checkpoint file '{model}' does not exist.")
        # single-file checkpoints (DreamBooth/LoRA merges) need the base model's configs; offline they must be local
        extra = {"config": config} if config else {}
        try:
            pipe = StableDiffusionPipeline.from_single_file(model, local_files_only=not hub_reachable(),
                                                            **extra, **kwargs)
        except (OSError, ValueError) as err:
            raise ModelNotAvailable(
                f"Could not load the checkpoint '{model}': its model configs are not on this machine. "
                f"Give the base model's folder with --config (e.g. a local copy of {DEFAULT_SD})."
            ) from err
    else:
        pipe = _from_pretrained(StableDiffusionPipeline, model, **kwargs)
    return {k: pipe.components[k] for k in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}


def has_image_unet(path: str) -> bool:
    """An AnimateDiff folder that also serves image pipelines: it keeps its image UNet's config in unet_2d/."""
    return model_kind(path) == "animatediff" and (Path(path) / "unet_2d" / "config.json").exists()


def _image_components_of_animatediff(model: str, dtype: torch.dtype) -> dict:
    """The AnimateDiff folder's components with its image UNet in place of the motion UNet, and its image text
    encoder (text_encoder_2d/) when the video model has its own."""
    from diffusers import AnimateDiffPipeline

    comps = _from_pretrained(AnimateDiffPipeline, model, dtype=dtype).components
    comps["unet"] = image_unet_of_animatediff(model, comps["unet"]).to(dtype)
    comps["text_encoder"] = image_text_encoder_of_animatediff(model, comps["text_encoder"])
    return {k: comps[k] for k in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}


def image_text_encoder_of_animatediff(folder, text_encoder):
    """A demo-style bundle's image text encoder: its own weights in text_encoder_2d/ when the video training
    also tuned the video model's encoder, else `text_encoder` (the bundle's text_encoder/) as it is."""
    from transformers import CLIPTextModel

    own = Path(folder) / "text_encoder_2d"
    if (own / "config.json").exists():
        return CLIPTextModel.from_pretrained(own, torch_dtype=text_encoder.dtype).to(text_encoder.device)
    return text_encoder


def image_unet_of_animatediff(folder, motion_unet):
    """A demo-style bundle's image UNet: its own weights in unet_2d/ when the video training also tuned the 2D
    layers, else the motion UNet's weights minus the motion modules (trained with the 2D weights frozen, so
    the weights are stored once and unet_2d/ holds only the config)."""
    from diffusers import UNet2DConditionModel

    if any((Path(folder) / "unet_2d").glob("*.safetensors")):
        return UNet2DConditionModel.from_pretrained(Path(folder) / "unet_2d", torch_dtype=motion_unet.dtype)
    return strip_motion_modules(motion_unet, folder)


def strip_motion_modules(motion_unet, folder):
    """The UNetMotionModel's 2D weights as a UNet2DConditionModel (config from folder/unet_2d)."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(Path(folder) / "unet_2d"))
    unet.load_state_dict({k: v for k, v in motion_unet.state_dict().items() if "motion_modules" not in k},
                         strict=True)
    return unet.to(motion_unet.dtype)


def load_animatediff_components(model: str, dtype: torch.dtype, motion_adapter: str = "") -> dict:
    """SD base + motion module -> components with a UNetMotionModel (or a saved AnimateDiff folder as is)."""
    from diffusers import AnimateDiffPipeline, MotionAdapter

    model = resolve_model_path(model)
    ensure_available(model)
    if model_kind(_local_index_folder(model)) == "unet3d":
        from diffusers import TextToVideoSDPipeline

        pipe = _from_pretrained(TextToVideoSDPipeline, model, dtype=dtype)
    elif model_kind(model) == "animatediff":
        pipe = _from_pretrained(AnimateDiffPipeline, model, dtype=dtype)
    else:
        adapter = _from_pretrained(MotionAdapter, motion_adapter or DEFAULT_MOTION_ADAPTER, dtype=dtype)
        pipe = _from_pretrained(AnimateDiffPipeline, model, motion_adapter=adapter, dtype=dtype)
    return {k: pipe.components[k] for k in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}


def _local_index_folder(model: str) -> str:
    """The folder holding `model`'s model_index.json: the model itself, or its snapshot in the hub cache."""
    if Path(model).exists():
        return model
    try:
        from huggingface_hub import hf_hub_download

        return str(Path(hf_hub_download(model, "model_index.json", local_files_only=True)).parent)
    except Exception:
        return model


def resolve_model_path(model: str) -> str:
    """'demo' -> the bundled demo folder; anything else unchanged."""
    if model in (DEMO_NAME, "", None):
        if not DEMO_DIR.exists():
            raise ModelNotAvailable("The bundled demo model is missing from assets/demo-model.")
        return str(DEMO_DIR)
    return str(model)


def demo_available() -> bool:
    return (DEMO_DIR / "model_index.json").exists()


class ModelManager:
    """Keeps loaded pipelines between jobs: each (pipeline, model, precision, device) loads once.

    compile: regionally compile each loaded UNet once, channels-last, with cuDNN autotuning (genl.accel),
    so later jobs reuse the compiled blocks: 1.36x faster on an H100 (bench/results/speed.md). None (the
    default) compiles on CUDA devices only, where it pays off from the first 128-frame job (about 3 min of
    compiling the first time, 40 s once Inductor's disk cache has it); GENL_COMPILE=1 or 0 forces it on or
    off without new flags. CPUs stay eager: compiling there costs minutes for the small demo model.
    """

    def __init__(self, compile: Optional[bool] = None):
        self._cache: dict = {}
        self._lock = threading.Lock()
        env = os.environ.get("GENL_COMPILE", "").strip()
        self.compile = compile if compile is not None else ({"1": True, "0": False}.get(env))

    def should_compile(self, dev: torch.device) -> bool:
        """Compile this device's UNets? The explicit choice, else only on CUDA."""
        return self.compile if self.compile is not None else dev.type == "cuda"

    def get(self, pipeline: str, model: str, *, device: str = "auto", precision: str = "auto",
            motion_adapter: str = "", controlnet: str = ""):
        from .pipelines import LongAnimateDiffPipeline, LongTuningFreePipeline, LongVideoEditPipeline

        dev = resolve_device(device)
        dtype = resolve_dtype(precision, dev)
        family = "animatediff" if pipeline == "animatediff" else "sd"
        key = (family, model, motion_adapter, str(dev), str(dtype))
        with self._lock:
            if key not in self._cache:
                if family == "animatediff":
                    comps = load_animatediff_components(model, dtype, motion_adapter)
                else:
                    comps = load_sd_components(model, dtype)
                for part in ("vae", "text_encoder", "unet"):
                    comps[part] = comps[part].to(dev).eval()
                if self.should_compile(dev):  # once per loaded model; the compiled blocks serve every later job
                    from .accel import accelerate_unet, enable_compile_cache

                    enable_compile_cache()
                    torch.backends.cudnn.benchmark = dev.type == "cuda"  # static shapes within a job
                    accelerate_unet(comps["unet"], "regional", channels_last=dev.type == "cuda", dynamic=False)
                self._cache[key] = comps
            comps = self._cache[key]
        classes = {"animatediff": LongAnimateDiffPipeline, "tuning_free": LongTuningFreePipeline,
                   "edit": LongVideoEditPipeline}
        if pipeline not in classes:
            raise ValueError(f"Unknown pipeline '{pipeline}'.")
        path = resolve_model_path(model)
        if family == "sd" and model_kind(path) == "animatediff" and not has_image_unet(path):
            raise ValueError(f"'{model}' is a text-to-video (AnimateDiff) model; this mode needs an image model.")
        parts = {k: comps[k] for k in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}
        if controlnet:
            if pipeline == "animatediff":
                raise ValueError("ControlNet control works with the image-model modes (tuning-free, edit).")
            parts["controlnet"] = self._controlnet(controlnet, dev, dtype)
        return classes[pipeline](**parts)

    def _controlnet(self, name: str, dev, dtype):

        key = ("controlnet", name, str(dev), str(dtype))
        with self._lock:
            if key not in self._cache:
                self._cache[key] = load_controlnet(name, dtype).to(dev).eval()
            return self._cache[key]

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def available_models(configured: Optional[list] = None) -> list[dict]:
    """For the Settings tab: each configured model, where it comes from, and whether it can load now."""
    entries = [{"name": DEMO_NAME, "source": str(DEMO_DIR), "available": demo_available(), "note": DEMO_NOTICE}]
    online = None
    for name in configured or [DEFAULT_SD, DEFAULT_MOTION_ADAPTER]:
        if Path(name).exists():
            entries.append({"name": name, "source": "local folder", "available": True, "note": ""})
            continue
        cached = _in_hub_cache(name)
        if not cached and online is None:
            online = hub_reachable()
        entries.append({"name": name, "source": "Hugging Face Hub", "available": bool(cached or online),
                        "note": "in local cache" if cached else ("downloads on first use" if online else
                                                                  "not downloaded; the hub is unreachable")})
    return entries


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import scan_cache_dir

        return any(r.repo_id == repo_id for r in scan_cache_dir().repos)
    except Exception:
        return False
