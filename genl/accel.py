"""Faster UNet forwards with the same outputs (up to fp rounding): regional compilation, channels-last.

Regional compilation (the PyTorch recipe diffusers' `compile_repeated_blocks` follows) compiles the blocks a
UNet repeats (spatial transformers, ResNet blocks, AnimateDiff motion modules) instead of the whole model:
instances of one class share compiled code, so compiling takes seconds rather than minutes, and the UNet's
Python glue (which changes with the batch of clips) stays eager. SD-1.5 UNets do not declare
`_repeated_blocks`, hence this module. Compiled code is cached by Inductor on disk
(TORCHINDUCTOR_CACHE_DIR, see `enable_compile_cache`), so a restarted worker compiles much faster.
"""
from __future__ import annotations

import os
from typing import Iterable, Optional

import torch

REPEATED_BLOCKS = ("Transformer2DModel", "ResnetBlock2D", "AnimateDiffTransformer3D")
COMPILE_MODES = ("none", "regional", "full")


def enable_compile_cache(folder: Optional[str] = None) -> str:
    """Keep Inductor's compiled kernels (and FX graphs) on disk so later processes reuse them."""
    folder = folder or os.environ.get("TORCHINDUCTOR_CACHE_DIR") or os.path.expanduser("~/.cache/genl/inductor")
    os.makedirs(folder, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = folder
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
    os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "1")
    return folder


def _allow_recompiles(limit: int = 64) -> None:
    # one compiled graph per (block class, channels, resolution, clips per call): far more than the default 8
    import torch._dynamo

    cfg = torch._dynamo.config
    cfg.recompile_limit = max(cfg.recompile_limit, limit)
    cfg.accumulated_recompile_limit = max(cfg.accumulated_recompile_limit, 8 * limit)


def compile_repeated_blocks(model: torch.nn.Module, classes: Iterable[str] = REPEATED_BLOCKS, *,
                            dynamic: Optional[bool] = None, mode: Optional[str] = None,
                            fullgraph: bool = False, backend: str = "inductor") -> int:
    """torch.compile every submodule whose class name is in `classes` (in place); returns how many.
    backend: Inductor for speed; "eager" only traces (tests check the wiring without compiling kernels)."""
    _allow_recompiles()
    names = set(classes)
    count = 0
    for module in model.modules():
        if type(module).__name__ in names:
            module.compile(dynamic=dynamic, mode=mode, fullgraph=fullgraph, backend=backend)
            count += 1
    if count == 0:
        raise ValueError(f"None of {sorted(names)} is in {type(model).__name__}: nothing to compile.")
    return count


def accelerate_unet(unet: torch.nn.Module, compile: str = "regional", *, channels_last: bool = False,
                    dynamic: Optional[bool] = None, backend: str = "inductor"):
    """Return the UNet to call: compiled per `compile` ('none', 'regional', 'full'), optionally channels-last.

    'full' wraps the whole model (longest compile, no graph breaks at block edges); 'regional' compiles
    blocks in place and returns the same module. Attention processors must be set before compiling.
    """
    if compile not in COMPILE_MODES:
        raise ValueError(f"Unknown compile mode '{compile}'. Choose one of: {', '.join(COMPILE_MODES)}.")
    if channels_last:
        unet.to(memory_format=torch.channels_last)
    if compile == "regional":
        compile_repeated_blocks(unet, dynamic=dynamic, backend=backend)
    elif compile == "full":
        _allow_recompiles()
        return torch.compile(unet, dynamic=dynamic, backend=backend)
    return unet
