"""Which UNet weights one-shot tuning changes, and how the tuned set is saved and put back.

lora (default): peft LoRA on the spatial self-attention (attn1 Q, K, V, out) and the text cross-attention
query (attn2 Q); full: Tune-A-Video's modules, attn1 Q and attn2 Q, trained whole. Both train the added
temporal attention whole (it is new, so there is nothing to adapt). Only the trained tensors are saved
(a few MB with LoRA), with the identifiers e^i and a JSON of what to rebuild before loading them.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import load_file, save_file

from ..attention import set_cross_frame_attention
from .identifiers import ClipIdentifiers
from .temporal import add_temporal_layers, set_clip_length

LORA_TARGETS = r".*\.attn1\.(to_q|to_k|to_v|to_out\.0)|.*\.attn2\.to_q"
FULL_TARGETS = re.compile(r".*\.(attn1|attn2)\.to_q\.(weight|bias)$|.*\.(attn_temp|norm_temp)\..*")
WEIGHTS_FILE = "weights.safetensors"
META_FILE = "tuning.json"


def prepare_unet(unet, method: str = "lora", lora_rank: int = 16, temporal_layers: bool = True,
                 clip_length: int = 16) -> list[torch.nn.Parameter]:
    """Add temporal layers and LoRA (in place), freeze the rest; returns the trainable parameters (fp32)."""
    if temporal_layers:
        add_temporal_layers(unet)
    set_clip_length(unet, clip_length)
    set_cross_frame_attention(unet, "bidirectional", clip_length)
    unet.requires_grad_(False)
    if method == "lora":
        from peft import LoraConfig

        unet.add_adapter(LoraConfig(r=lora_rank, lora_alpha=lora_rank, init_lora_weights="gaussian",
                                    target_modules=LORA_TARGETS))
        trainable = lambda name: "lora_" in name or ".attn_temp." in name or ".norm_temp." in name  # noqa: E731
    elif method == "full":
        trainable = lambda name: bool(FULL_TARGETS.match(name))  # noqa: E731
    else:
        raise ValueError(f"Unknown tuning method '{method}'. Choose lora or full.")
    params = []
    for name, p in unet.named_parameters():
        if trainable(name):
            p.data = p.data.float()  # fp32 master weights; the frozen rest may stay fp16/bf16
            p.requires_grad_(True)
            params.append(p)
    if not params:
        raise ValueError("This model has no attention layers that one-shot tuning can train.")
    return params


def trained_state(unet) -> dict:
    return {name: p.detach().cpu().float().contiguous() for name, p in unet.named_parameters() if p.requires_grad}


def save_tuned(folder, unet, identifiers: ClipIdentifiers, meta: dict) -> Path:
    """weights.safetensors (trained tensors + identifiers) and tuning.json, each replaced atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"unet.{k}": v for k, v in trained_state(unet).items()}
    tensors.update({f"clip.{k}": v for k, v in identifiers.save_dict().items()})
    tmp = folder / (WEIGHTS_FILE + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(folder / WEIGHTS_FILE)
    meta = dict(meta, identifiers=identifiers.meta())
    tmp = folder / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1, default=str))
    tmp.replace(folder / META_FILE)
    return folder


def read_meta(folder) -> dict:
    path = Path(folder) / META_FILE
    if not path.exists():
        raise ValueError(f"'{folder}' is not a tuning folder (it has no {META_FILE}). Tune on a video first.")
    return json.loads(path.read_text())


def load_tuned(folder, unet, *, clip_length: Optional[int] = None) -> tuple[ClipIdentifiers, dict]:
    """Rebuild the tuned structure on a fresh image UNet, load the trained tensors; returns (e^i, meta)."""
    meta = read_meta(folder)
    s = meta["settings"]
    dtype = unet.dtype  # the frozen weights' dtype; tuned tensors run in it too at sampling
    prepare_unet(unet, s["method"], s["lora_rank"], s["temporal_layers"], clip_length or s["clip_length"])
    unet.requires_grad_(False)
    tensors = load_file(str(Path(folder) / WEIGHTS_FILE))
    wanted = {k[len("unet."):]: v for k, v in tensors.items() if k.startswith("unet.")}
    params = dict(unet.named_parameters())
    missing = [k for k in wanted if k not in params]
    if missing:
        raise ValueError(f"The tuning in '{folder}' does not fit this model ({len(missing)} tensors have no "
                         f"place, e.g. {missing[0]}). Use the model it was tuned from: {meta.get('model')}.")
    with torch.no_grad():
        for k, v in wanted.items():
            if params[k].shape != v.shape:
                raise ValueError(f"The tuning in '{folder}' was made for another model "
                                 f"(tensor {k} is {tuple(v.shape)}, here {tuple(params[k].shape)}).")
            params[k].data = v.to(device=params[k].device, dtype=dtype)
    identifiers = ClipIdentifiers.from_saved(meta["identifiers"], tensors.get("clip.identifiers"))
    return identifiers.to(unet.device), meta
