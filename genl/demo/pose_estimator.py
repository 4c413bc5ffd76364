"""A tiny pose estimator for the stick-figure world (`genl.demo.figures`), trained on its renderings.

Why: scoring pose control needs the pose of *generated* figures, which have no ground truth. OpenPose's real
network is trained on people, not on these figures, so a small heatmap CNN trained on the figure world's
frames and true keypoints stands in, for this world only. It is labelled as such in every result, and its own
error on held-out rendered frames is reported beside the scores it gives. Rendered frames are blurred and
noised at random in training so that it also reads the softer frames a diffusion model makes.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

NOTE = "tiny pose estimator trained on the stick-figure world (stand-in for OpenPose; figures world only)"
STRIDE = 4


class TinyPoseNet(nn.Module):
    """frames (B, 3, H, W) in [-1, 1] -> 18 joint heatmaps (B, 18, H/4, W/4) (logits)."""

    def __init__(self, width: int = 32):
        super().__init__()

        def block(i, o, s):
            return nn.Sequential(nn.Conv2d(i, o, 3, s, 1), nn.GroupNorm(8, o), nn.SiLU(),
                                 nn.Conv2d(o, o, 3, 1, 1), nn.GroupNorm(8, o), nn.SiLU())

        self.down1, self.down2 = block(3, width, 2), block(width, 2 * width, 2)        # 1/2, 1/4
        self.down3, self.down4 = block(2 * width, 4 * width, 2), block(4 * width, 4 * width, 2)  # 1/8, 1/16
        self.up3 = block(8 * width, 4 * width, 1)
        self.up2 = block(6 * width, 2 * width, 1)
        self.head = nn.Conv2d(2 * width, 18, 1)

    def forward(self, x):
        d2 = self.down2(self.down1(x))
        d3 = self.down3(d2)
        d4 = self.down4(d3)
        u3 = self.up3(torch.cat([d3, F.interpolate(d4, scale_factor=2.0)], 1))
        u2 = self.up2(torch.cat([d2, F.interpolate(u3, scale_factor=2.0)], 1))
        return self.head(u2)


def heatmap_targets(keypoints: torch.Tensor, h: int, w: int, sigma: float = 1.0) -> torch.Tensor:
    """(B, 18, 2) keypoints in frame fractions -> (B, 18, h, w) Gaussian targets on the heatmap grid."""
    ys = torch.arange(h, device=keypoints.device).view(1, 1, h, 1) + 0.5
    xs = torch.arange(w, device=keypoints.device).view(1, 1, 1, w) + 0.5
    kx, ky = (keypoints[..., 0] * w)[..., None, None], (keypoints[..., 1] * h)[..., None, None]
    return torch.exp(-((xs - kx) ** 2 + (ys - ky) ** 2) / (2 * sigma**2))


def decode(heatmaps: torch.Tensor) -> torch.Tensor:
    """(B, 18, h, w) -> keypoints (B, 18, 2) in frame fractions: the soft-argmax of a 5x5 patch at each peak."""
    b, j, h, w = heatmaps.shape
    flat = heatmaps.flatten(2).argmax(-1)
    py, px = (flat // w).float(), (flat % w).float()
    ys = torch.arange(h, device=heatmaps.device).float().view(1, 1, h, 1)
    xs = torch.arange(w, device=heatmaps.device).float().view(1, 1, 1, w)
    near = ((ys - py[..., None, None]).abs() <= 2) & ((xs - px[..., None, None]).abs() <= 2)
    p = torch.where(near, heatmaps.float().clamp_min(0), torch.zeros(())) + 1e-6 * near
    p = p / p.sum((-1, -2), keepdim=True)
    x = ((p * (xs + 0.5)).sum((-1, -2))) / w
    y = ((p * (ys + 0.5)).sum((-1, -2))) / h
    return torch.stack([x, y], -1)


def _augment(x: torch.Tensor) -> torch.Tensor:
    """Random blur and noise, so generated (softer, noisier) frames look like training data."""
    b = x.shape[0]
    blur = torch.rand(b, device=x.device) < 0.5
    if blur.any():
        k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=x.device) / 16
        kern = (k[:, None] * k[None, :]).expand(3, 1, 5, 5)
        x = torch.where(blur.view(-1, 1, 1, 1), F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), kern, groups=3), x)
    return x + torch.randn_like(x) * torch.rand(b, 1, 1, 1, device=x.device) * 0.1


def train_estimator(frames: np.ndarray, keypoints: np.ndarray, seconds: float, device, batch: int = 128,
                    lr: float = 2e-3, log_every: int = 100) -> tuple[TinyPoseNet, dict]:
    """Fit TinyPoseNet for `seconds` on frames (N, H, W, 3) uint8 with keypoints (N, 18, 2); the last 5 % held out."""
    n_val = max(1, len(frames) // 20)
    x_all = torch.from_numpy(frames).to(device)
    k_all = torch.from_numpy(keypoints).float().to(device)
    net = TinyPoseNet().to(device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    n_train, start, step, curve = len(frames) - n_val, time.time(), 0, []
    while time.time() - start < seconds:
        i = torch.randint(n_train, (batch,), device=device)
        x = _augment(x_all[i].permute(0, 3, 1, 2).float() / 127.5 - 1)
        out = net(x)
        target = heatmap_targets(k_all[i], *out.shape[-2:])
        loss = F.mse_loss(torch.sigmoid(out), target) * 100
        for g in opt.param_groups:
            g["lr"] = lr * (0.1 + 0.9 * max(0.0, 1 - (time.time() - start) / seconds))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % log_every == 0:
            curve.append({"step": step, "seconds": round(time.time() - start, 1), "loss": loss.item()})
            print(f"[estimator] step {step} loss {loss.item():.4f}", flush=True)
    net.eval()
    held = estimate(net, frames[n_train:])
    err = np.linalg.norm(held - keypoints[n_train:], axis=-1)
    return net, {"steps": step, "seconds": round(time.time() - start, 1), "loss": curve,
                 "held_out_frames": int(n_val), "held_out_mean_error": float(err.mean()),
                 "held_out_pck05": float((err < 0.05).mean())}


@torch.no_grad()
def estimate(net: TinyPoseNet, frames: np.ndarray, batch: int = 256) -> np.ndarray:
    """Keypoints (N, 18, 2) in frame fractions of frames (N, H, W, 3) uint8."""
    param = next(net.parameters())
    out = []
    for i in range(0, len(frames), batch):
        x = torch.from_numpy(np.ascontiguousarray(frames[i:i + batch])).to(param.device)
        out.append(decode(net(x.permute(0, 3, 1, 2).float() / 127.5 - 1).float()).cpu())
    return torch.cat(out).numpy().astype(np.float64)


def save_estimator(net: TinyPoseNet, folder, info: dict) -> None:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, folder / "estimator.safetensors")
    (folder / "estimator.json").write_text(json.dumps({"note": NOTE, **info}, indent=1))


def load_estimator(folder, device="cpu") -> TinyPoseNet:
    from safetensors.torch import load_file

    path = Path(folder) / "estimator.safetensors"
    if not path.exists():
        raise ValueError(f"No figure pose estimator in {folder}: train one with "
                         "`python -m genl.demo.pose_controlnet train`.")
    net = TinyPoseNet()
    net.load_state_dict(load_file(path))
    return net.to(device).eval()
