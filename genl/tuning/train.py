"""One-shot tuning on a long video (paper Sec. 4, Tune-A-Video with bi-directional cross-frame attention).

Every clip F_i(v) (length M, stride S) of the video is a training sample with its timeline condition c^i
(per frame, as the image pipelines condition) and its identifier e^i; e^i is dropped at random. Loss: the
usual epsilon (or v) MSE at a random timestep per clip. Data order, noise and drops are pure functions of
(seed, step), so a resumed run continues exactly where the checkpoint left it.

Progress leaves as one dict per step: {"stage": "tune", "step", "total", "loss", "rate", "eta"}.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..codenoise import make_windows, window_frames
from ..pipelines.common import encode_frames, timeline_conditions
from ..plan import CoDenoisePlan
from ..sampling import Cancelled, check_cancel
from ..timeline import Timeline
from .identifiers import ClipIdentifiers, drop_mask
from .settings import TuneSettings
from .weights import prepare_unet, save_tuned, trained_state

CHECKPOINT_FILE = "checkpoint.pt"


@dataclass
class TuneState:
    """What survives a restart besides the weights: where we are and the loss curve."""

    step: int = 0
    losses: list = field(default_factory=list)  # one per step
    epoch_losses: list = field(default_factory=list)
    best: float = math.inf
    stale: int = 0  # epochs since the epoch loss last improved by plateau_delta
    stop_reason: str = ""


def autocast_dtype(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """bf16 autocast on GPUs (no loss scaling needed), none on CPUs."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("fp16 is not supported on the CPU; use fp32 or bf16.")
    return {"auto": torch.bfloat16, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def make_optimizer(settings: TuneSettings, params, identifier_params, device: torch.device):
    groups = [{"params": params, "lr": settings.lr(), "weight_decay": 1e-2}]
    if identifier_params:
        groups.append({"params": identifier_params, "lr": settings.identifier_lr, "weight_decay": 0.0})
    if settings.optimizer == "adamw8bit":
        if device.type != "cuda":
            raise ValueError("8-bit Adam needs a CUDA GPU; use the 'adamw' optimiser on this machine.")
        try:
            import bitsandbytes as bnb
        except ImportError as err:
            raise ValueError("8-bit Adam needs the bitsandbytes package: pip install bitsandbytes, "
                             "or use the 'adamw' optimiser.") from err
        return bnb.optim.AdamW8bit(groups)
    return torch.optim.AdamW(groups)


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator("cpu").manual_seed(int(seed) * 1_000_003 + int(step))


def batch_clips(num_clips: int, batch_size: int, seed: int, step: int) -> list[int]:
    """Clips of optimiser step `step`: epochs visit every clip once, in an order fixed by (seed, epoch)."""
    per_epoch = math.ceil(num_clips / batch_size)
    epoch, k = divmod(step, per_epoch)
    order = torch.randperm(num_clips, generator=torch.Generator("cpu").manual_seed(int(seed) + 7919 * epoch))
    return order[k * batch_size:(k + 1) * batch_size].tolist()


def diffusion_loss(unet, scheduler, latents, clips, windows, text, identifiers, dropped, generator, amp):
    """Epsilon/v MSE on clips (one random t per clip), images stacked clip by clip (frames contiguous)."""
    num_frames = latents.shape[2]
    m = windows[0][1] - windows[0][0]
    rows = [window_frames(windows[i], num_frames).to(latents.device) for i in clips]
    x0 = torch.cat([latents[0].index_select(1, r).transpose(0, 1) for r in rows])  # (b*M, C, h, w)
    noise = torch.randn(x0.shape, generator=generator).to(x0)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (len(clips),), generator=generator)
    t = t.repeat_interleave(m).to(x0.device)
    noisy = scheduler.add_noise(x0, noise, t)
    states = torch.cat([identifiers.states(text[r], None if drop else i)
                        for i, r, drop in zip(clips, rows, dropped.tolist())])
    with torch.autocast(x0.device.type, dtype=amp, enabled=amp is not None):
        pred = unet(noisy, t, encoder_hidden_states=states).sample
    target = scheduler.get_velocity(x0, noise, t) if scheduler.config.prediction_type == "v_prediction" else noise
    return F.mse_loss(pred.float(), target.float())


def tune(
    components: dict,
    frames: np.ndarray,
    timeline: Timeline,
    settings: TuneSettings,
    folder,
    *,
    meta: Optional[dict] = None,
    progress: Optional[Callable[[dict], None]] = None,
    is_cancelled: Optional[Callable[[], bool]] = None,
) -> dict:
    """Tune components["unet"] in place on `frames` (F, H, W, 3) uint8 and save into `folder`.

    Resumes from folder/checkpoint.pt when it exists. Every `checkpoint_every` steps, on cancel and at the
    end it writes the checkpoint and the usable tuned weights (so a cancelled tuning can still be used).
    Returns the saved meta (settings, steps, loss curve, stop reason).
    """
    vae, text_encoder, tokenizer, unet, scheduler = (components[k] for k in
                                                     ("vae", "text_encoder", "tokenizer", "unet", "scheduler"))
    folder = Path(folder)
    device = unet.device
    amp = autocast_dtype(settings.precision, device)
    num_frames, m = len(frames), settings.clip_length
    windows = make_windows(num_frames, m, settings.stride)  # F_i: one training clip per window
    timeline = timeline.validate(num_frames)

    latents = encode_frames(vae, frames, device).float()
    text = frame_text(tokenizer, text_encoder, timeline, windows, num_frames, device)  # c^i per frame
    gen = torch.Generator("cpu").manual_seed(settings.seed)
    identifiers = ClipIdentifiers(windows, num_frames, text.shape[-1], settings.identifier_tokens,
                                  std=float(text.std()), generator=gen).to(device)
    params = prepare_unet(unet, settings.method, settings.lora_rank, settings.temporal_layers, m)
    if settings.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()
    optimizer = make_optimizer(settings, params, list(identifiers.parameters()), device)

    per_epoch = math.ceil(len(windows) / settings.batch_size)
    total = settings.epochs * per_epoch
    if settings.max_steps:
        total = min(total, settings.max_steps)
    state = _resume(folder, unet, identifiers, optimizer, settings) or TuneState()
    meta = dict(meta or {}, settings=settings.to_dict(), timeline=timeline.to_json(), num_frames=num_frames,
                windows=[list(w) for w in windows], total=total)

    def save(finished: bool) -> None:
        _save_checkpoint(folder, unet, identifiers, optimizer, settings, state)
        save_tuned(folder, unet, identifiers, dict(meta, step=state.step, finished=finished,
                                                   stop_reason=state.stop_reason, losses=state.losses,
                                                   epoch_losses=state.epoch_losses))

    started, first = time.monotonic(), state.step
    epoch_acc: list[float] = []
    try:
        while state.step < total and not state.stop_reason:
            check_cancel(is_cancelled)
            g = _step_generator(settings.seed, state.step)
            clips = batch_clips(len(windows), settings.batch_size, settings.seed, state.step)
            dropped = drop_mask(len(clips), settings.identifier_dropout, g)
            loss = diffusion_loss(unet, scheduler, latents, clips, windows, text, identifiers, dropped, g, amp)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            state.step += 1
            value = loss.item()
            state.losses.append(value)
            epoch_acc.append(value)
            if state.step % per_epoch == 0:
                _end_epoch(state, epoch_acc, settings)
                epoch_acc = []
            if progress is not None:
                rate = (state.step - first) / max(time.monotonic() - started, 1e-9)
                progress({"stage": "tune", "step": state.step, "total": total, "loss": value,
                          "rate": rate, "eta": (total - state.step) / rate if rate > 0 else None})
            if state.step % settings.checkpoint_every == 0 and state.step < total:
                save(False)
    except Cancelled:
        save(False)  # the last step's weights stay usable
        raise
    finally:
        unet.eval()
        if settings.gradient_checkpointing:
            unet.disable_gradient_checkpointing()
    state.stop_reason = state.stop_reason or "finished all epochs"
    save(True)
    return {**meta, "step": state.step, "finished": True, "stop_reason": state.stop_reason,
            "losses": state.losses, "epoch_losses": state.epoch_losses, "folder": str(folder)}


def frame_text(tokenizer, text_encoder, timeline: Timeline, windows, num_frames: int, device) -> torch.Tensor:
    """(F, tokens, dim) fp32 text states c^i, one row per frame (the image pipelines' per-frame mix)."""
    m = windows[0][1] - windows[0][0]
    stride = windows[1][0] - windows[0][0] if len(windows) > 1 else m
    plan = CoDenoisePlan(num_frames=num_frames, clip_length=m, stride=stride)
    return timeline_conditions(tokenizer, text_encoder, timeline, plan, device=device, dtype=torch.float32,
                               use_cfg=False, per_frame=True).frames[0]


def _end_epoch(state: TuneState, losses: list, settings: TuneSettings) -> None:
    """Early stop: the epoch mean loss has not improved by plateau_delta (relative) for plateau_patience epochs."""
    mean = float(np.mean(losses))
    state.epoch_losses.append(mean)
    if mean < state.best * (1 - settings.plateau_delta):
        state.best, state.stale = mean, 0
    else:
        state.stale += 1
    if settings.plateau_patience and state.stale >= settings.plateau_patience:
        state.stop_reason = f"loss plateaued (no {settings.plateau_delta:.0%} gain in {state.stale} epochs)"


def _save_checkpoint(folder: Path, unet, identifiers, optimizer, settings: TuneSettings, state: TuneState) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    blob = {"settings": settings.weights_key(), "state": asdict(state), "trainable": trained_state(unet),
            "identifiers": identifiers.save_dict(), "optimizer": optimizer.state_dict()}
    tmp = folder / (CHECKPOINT_FILE + ".tmp")
    torch.save(blob, tmp)
    tmp.replace(folder / CHECKPOINT_FILE)


def _resume(folder: Path, unet, identifiers, optimizer, settings: TuneSettings) -> Optional[TuneState]:
    path = folder / CHECKPOINT_FILE
    if not path.exists():
        return None
    blob = torch.load(path, map_location="cpu", weights_only=False)
    if blob["settings"] != settings.weights_key():
        raise ValueError(f"The checkpoint in '{folder}' was made with other tuning settings; "
                         "tune into a new folder or delete the old checkpoint.")
    params = dict(unet.named_parameters())
    with torch.no_grad():
        for name, value in blob["trainable"].items():
            params[name].copy_(value)
        if "identifiers" in blob.get("identifiers", {}):
            for p, v in zip(identifiers.embeddings, blob["identifiers"]["identifiers"]):
                p.copy_(v)
    optimizer.load_state_dict(blob["optimizer"])
    return TuneState(**blob["state"])


@torch.no_grad()
def clip_loss(components: dict, unet, identifiers: ClipIdentifiers, frames: np.ndarray, timeline: Timeline, *,
              seed: int = 0, use_identifiers: bool = True) -> float:
    """Mean diffusion loss over every training clip at fixed noise and timesteps (seeded): a number that
    compares a tuning's weights before and after, or with and without e^i."""
    device = unet.device
    windows = identifiers.windows
    latents = encode_frames(components["vae"], frames, device).float()
    text = frame_text(components["tokenizer"], components["text_encoder"], timeline.validate(len(frames)), windows,
                      len(frames), device)
    clips = list(range(len(windows)))
    dropped = torch.full((len(clips),), not use_identifiers)
    loss = diffusion_loss(unet, components["scheduler"], latents, clips, windows, text, identifiers, dropped,
                          torch.Generator("cpu").manual_seed(seed), None)
    return float(loss)
