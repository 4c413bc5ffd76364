"""Cheap live previews of the current x0 estimate, made in the worker.

The default is the well-known linear approximation of the Stable Diffusion VAE: each latent pixel's 4
channels times a fixed 4x3 matrix gives roughly its RGB colour (ComfyUI's and InvokeAI's "latent2rgb"
previews). It needs no weights and costs a matrix product on a few frames. A tiny VAE decoder (TAESD,
`AutoencoderTiny`) gives sharper previews when one is configured, and a model whose own VAE is tiny (the
bundled demo model, test models) previews through that VAE.

`Previewer` throttles itself so previews stay under 5 % of the run time: at most one per
`min_interval` seconds, and never more often than 25x its own measured cost (4 % plus rounding).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from PIL import Image

# SD 1.x/2.x latent channel -> RGB (ComfyUI latent_formats.SD15), output roughly in [-1, 1].
SD_LATENT_RGB = torch.tensor([
    [0.3512, 0.2297, 0.3227],
    [0.3250, 0.4974, 0.2350],
    [-0.2829, 0.1762, 0.2721],
    [-0.2120, -0.2616, -0.7177],
])
SD_LATENT_RGB_BIAS = torch.zeros(3)


SMALL_VAE_BYTES = 100 * 2**20  # the demo and test models' VAEs; SD's (>160 MB) uses the linear table
_DECODERS: dict = {}


def small_vae_decoder(model: str) -> Optional[Callable[[torch.Tensor], np.ndarray]]:
    """The model's own VAE as the preview decoder when it is small and local (else None).

    SD's linear table is wrong for other VAEs, such as the bundled demo model's, and a least-squares linear
    fit does little better there; a VAE of a few MB decodes 8 small frames in milliseconds on the CPU, and
    the Previewer's cost-based throttle keeps it under 5 % of the run anyway. Loaded once per worker.
    """
    try:
        from genl.models import resolve_model_path

        vae_dir = Path(resolve_model_path(model)) / "vae"
        if not vae_dir.is_dir():
            return None
        key = str(vae_dir.resolve())
        if key not in _DECODERS:
            size = sum(f.stat().st_size for f in vae_dir.rglob("*") if f.is_file())
            _DECODERS[key] = _load_vae_decoder(vae_dir) if size <= SMALL_VAE_BYTES else None
        return _DECODERS[key]
    except Exception:  # noqa: BLE001 - a preview problem must never fail a job
        return None


def _load_vae_decoder(vae_dir: Path) -> Callable[[torch.Tensor], np.ndarray]:
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(str(vae_dir), local_files_only=True).float().eval()

    @torch.no_grad()
    def decode(latents: torch.Tensor) -> np.ndarray:
        x = latents.permute(1, 0, 2, 3).float().cpu() / vae.config.scaling_factor  # frames as batch
        img = vae.decode(x).sample.clamp(-1, 1)
        return ((img + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()

    return decode


def pick_frames(num_frames: int, count: int) -> list[int]:
    """Up to `count` evenly spread frame indices, always including the first and the last."""
    if num_frames <= count:
        return list(range(num_frames))
    return sorted({int(round(i * (num_frames - 1) / (count - 1))) for i in range(count)})


def latents_to_rgb(latents: torch.Tensor) -> np.ndarray:
    """(C, F, h, w) latents -> (F, h, w, 3) uint8 by the linear approximation.

    Latents with other than 4 channels (test models, other VAEs) show their first three channels, each
    stretched to its own range: still a faithful picture of where the sampler is going.
    """
    x = latents.detach().float().cpu()
    if x.shape[0] == 4:
        rgb = torch.einsum("cfhw,cr->fhwr", x, SD_LATENT_RGB) + SD_LATENT_RGB_BIAS
        rgb = (rgb + 1.0) / 2.0
    else:
        ch = x[:3] if x.shape[0] >= 3 else x[:1].expand(3, *x.shape[1:])
        lo = ch.amin(dim=(1, 2, 3), keepdim=True)
        hi = ch.amax(dim=(1, 2, 3), keepdim=True)
        rgb = ((ch - lo) / (hi - lo).clamp_min(1e-6)).permute(1, 2, 3, 0)
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def tile_frames(frames: np.ndarray, min_height: int = 96, columns: int = 4) -> np.ndarray:
    """(F, h, w, 3) -> one image: frames in rows of `columns`, upscaled (nearest) to >= min_height."""
    f, h, w, _ = frames.shape
    scale = max(1, -(-min_height // h))
    frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    cols = min(columns, f)
    rows = -(-f // cols)
    pad = rows * cols - f
    if pad:
        frames = np.concatenate([frames, np.zeros((pad, *frames.shape[1:]), frames.dtype)])
    fh, fw = frames.shape[1:3]
    return frames.reshape(rows, cols, fh, fw, 3).transpose(0, 2, 1, 3, 4).reshape(rows * fh, cols * fw, 3)


def load_tiny_decoder(path: str, device: str = "cpu") -> Callable[[torch.Tensor], np.ndarray]:
    """A TAESD decoder from a local folder: (C, F, h, w) latents -> (F, H, W, 3) uint8."""
    from diffusers import AutoencoderTiny

    vae = AutoencoderTiny.from_pretrained(path, local_files_only=True).to(device).eval()

    @torch.no_grad()
    def decode(latents: torch.Tensor) -> np.ndarray:
        x = latents.permute(1, 0, 2, 3).to(device=device, dtype=vae.dtype)  # frames as batch
        img = vae.decode(x).sample.float().clamp(-1, 1)
        return ((img + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    return decode


class Previewer:
    """Turns progress callbacks' x0 into PNG files under `folder`, throttled by time and cost."""

    def __init__(self, folder, *, max_frames: int = 8, min_interval: float = 1.0, max_share: float = 0.04,
                 decoder: Optional[Callable[[torch.Tensor], np.ndarray]] = None):
        self.folder = Path(folder)
        self.max_frames = max_frames
        self.min_interval = min_interval
        self.max_share = max_share
        self.decoder = decoder
        self.count = 0
        self.spent = 0.0  # seconds spent making previews
        self._last = -float("inf")
        self._cost = 0.0

    def due(self) -> bool:
        gap = max(self.min_interval, self._cost / self.max_share if self.max_share > 0 else 0.0)
        return time.monotonic() - self._last >= gap

    def __call__(self, x0: Optional[torch.Tensor], stage: str, step: int) -> Optional[Path]:
        """Write a preview if one is due; returns its path (or None when skipped)."""
        if x0 is None or not self.due():
            return None
        t0 = time.monotonic()
        lat = x0[0] if x0.dim() == 5 else x0  # (C, F, h, w): first batch row
        idx = pick_frames(lat.shape[1], self.max_frames)
        lat = lat[:, idx]
        frames = self.decoder(lat) if self.decoder is not None else latents_to_rgb(lat)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"preview-{self.count:04d}-{stage}-{step:04d}.png"
        Image.fromarray(tile_frames(frames)).save(path, compress_level=1)
        self.count += 1
        self._cost = time.monotonic() - t0
        self.spent += self._cost
        self._last = time.monotonic()
        return path
