"""Stage 3 of the demo model: AnimateDiff motion modules on 16-frame windows of rendered long videos.

Why windows of long videos rather than 16-frame clips only: at generation time each co-denoised clip F_i
sees a 16-frame window of a 64..128-frame video whose segments last 16..64 frames, so objects cover the
caption's travel at many speeds and windows straddle prompt changes. Training on the same windows, with
the same per-window text condition the pipeline builds (the segments' embeddings weighted by their share of
the window's frames, `Timeline.clip_prompt_mix` + linear `mix_embeddings`), closes that gap. The VAE and text encoder
stay frozen; besides the motion modules, `--motion-train all` (default) unfreezes the 2D UNet too, because diffusers' motion modules never see the text (see `trainable_groups`). The image
pipelines keep the untouched 2D weights, stored in unet_2d/ when they differ. The EMA is what gets saved.

`python -m genl.demo train --stage motion --init assets/demo-model --out ...` retrains this stage alone on
top of a finished bundle.
"""
from __future__ import annotations

import copy
import json
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from genl.demo.world import caption, random_long_video, render_long_video

WINDOW = 16  # M: frames the motion modules see at once


@dataclass
class MotionData:
    """Latent posteriors of every rendered frame plus what the window sampler needs to condition them."""
    means: torch.Tensor       # (T, C, h, w) all videos' frames, concatenated
    stds: torch.Tensor        # (T, C, h, w)
    segment: torch.Tensor     # (T,) index into `ids` of each frame's segment caption
    offsets: torch.Tensor     # (V,) first frame of each video in the concatenation
    lengths: torch.Tensor     # (V,) frames per video (>= WINDOW)
    ids: torch.Tensor         # (segments, tokens) caption token ids
    scaling: float
    reversed_ids: torch.Tensor | None = None  # (segments, tokens) the caption with its direction reversed
    directional: torch.Tensor | None = None   # (segments,) bool: the segment moves left/right/up/down


def video_specs(n: int, seed: int, mix: tuple[float, float, float]) -> list:
    """n long-video specs: single 16-frame clips, single segments of 17..64 frames (slower motion) and
    multi-prompt videos of 64..128 frames (2..4 segments), in the proportions `mix`."""
    rng = np.random.default_rng(seed)
    kinds = rng.choice(3, size=n, p=np.asarray(mix) / sum(mix))
    specs = []
    for i, kind in enumerate(kinds):
        s = 50_000_000 + seed * 1_000_003 + i  # far from the quality benchmark's seeds 1000..
        if kind == 0:
            specs.append(random_long_video(s, num_frames=WINDOW, num_segments=1))
        elif kind == 1:
            specs.append(random_long_video(s, num_frames=int(rng.integers(WINDOW + 1, 65)), num_segments=1))
        else:
            specs.append(random_long_video(s))
    return specs


def _render(args):
    spec, size = args
    return render_long_video(spec, size)


def render_videos(specs: list, size: int) -> list[np.ndarray]:
    """Frames of every spec, rendered on every CPU core (at most 16)."""
    import multiprocessing as mp

    with mp.get_context("fork").Pool(min(16, mp.cpu_count())) as pool:
        return pool.map(_render, [(s, size) for s in specs], chunksize=8)


@torch.no_grad()
def encode_videos(vae, videos: list[np.ndarray], specs: list, tokenizer, max_length: int, device,
                  autocast) -> MotionData:
    """VAE posteriors of all frames and the caption of each frame's segment."""
    from .motion_probe import REVERSED

    means, stds, seg_of_frame, captions, flipped = [], [], [], [], []
    for frames, spec in zip(videos, specs):
        for seg in spec.segments:
            seg_of_frame += [len(captions)] * (seg.last - seg.first + 1)
            captions.append(caption(seg))
            flipped.append(caption(replace(seg, motion=REVERSED.get(seg.motion, seg.motion))))
    flat = np.concatenate(videos)
    for i in range(0, len(flat), 512):
        x = torch.from_numpy(flat[i:i + 512]).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1
        with autocast:
            post = vae.encode(x).latent_dist
        means.append(post.mean.float())
        stds.append(post.std.float())
    lengths = torch.tensor([len(v) for v in videos], device=device)
    ids, rev = (tokenizer(c, padding="max_length", max_length=max_length, truncation=True).input_ids
                for c in (captions, flipped))
    return MotionData(torch.cat(means), torch.cat(stds), torch.tensor(seg_of_frame, device=device),
                      torch.cumsum(lengths, 0) - lengths, lengths, torch.tensor(ids, device=device),
                      float(vae.config.scaling_factor), torch.tensor(rev, device=device),
                      torch.tensor([a != b for a, b in zip(captions, flipped)], device=device))


def sample_windows(data: MotionData, batch: int) -> torch.Tensor:
    """(batch, WINDOW) frame indices: a uniformly chosen video, then a uniformly chosen window of it."""
    v = torch.randint(len(data.lengths), (batch,), device=data.lengths.device)
    start = data.offsets[v] + (torch.rand(batch, device=v.device) * (data.lengths[v] - WINDOW + 1)).long()
    return start[:, None] + torch.arange(WINDOW, device=v.device)


def mixed_caption_states(text_encoder, ids: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """Per-window text states (batch, tokens, dim) exactly as the pipeline mixes them: the mean of the embeddings
    of the frames' segment captions (`ids`: one row of token ids per segment; `segments`: (batch, frames))."""
    segs, inverse = torch.unique(segments, return_inverse=True)
    return text_encoder(ids[segs])[0].float()[inverse].mean(dim=1)


def caption_drop(batch: int, dropout: float, device) -> torch.Tensor:
    """(batch,) bool: the windows that get the empty caption (classifier-free guidance)."""
    return torch.rand(batch, device=device) < dropout


def window_condition(text_encoder, data: MotionData, frames: torch.Tensor, empty_ids: torch.Tensor,
                     dropout: float, drop: torch.Tensor | None = None) -> torch.Tensor:
    """`mixed_caption_states` of the windows' captions; `dropout` of the windows (or those `drop` marks, when the
    caller needs to know which) get the empty caption instead."""
    window = mixed_caption_states(text_encoder, data.ids, data.segment[frames])
    empty = text_encoder(empty_ids)[0].float().expand_as(window)
    if drop is None:
        drop = caption_drop(frames.shape[0], dropout, frames.device)
    return torch.where(drop[:, None, None], empty, window)


def reversed_condition(text_encoder, data: MotionData, frames: torch.Tensor) -> torch.Tensor:
    """`window_condition` without dropout, every segment's caption read with its direction reversed."""
    return mixed_caption_states(text_encoder, data.reversed_ids, data.segment[frames])


CONTRAST_MIN_T = 500  # the contrast acts where layout and motion are decided (the probe's range), not on detail


def contrast_rows(data: MotionData, frames: torch.Tensor, t: torch.Tensor, dropped: torch.Tensor) -> torch.Tensor:
    """Indices of the windows the direction contrast uses: mostly directional frames, noise level t >=
    CONTRAST_MIN_T, and a real caption (`dropped`: the windows given the empty caption)."""
    directional = data.directional[data.segment[frames]].float().mean(dim=1) > 0.5
    return torch.nonzero(directional & (t >= CONTRAST_MIN_T) & ~dropped).flatten()


def direction_contrast(pred: torch.Tensor, pred_reversed: torch.Tensor, noise: torch.Tensor,
                       margin: float) -> torch.Tensor:
    """Hinge that asks the true caption to predict the noise better than the direction-reversed one by
    `margin` x the true error: mean over windows of relu(margin * e_true - (e_reversed - e_true)).

    Why: trained on epsilon MSE alone, the demo UNet predicts the same noise whichever direction the caption
    names (the probe sat at chance over four runs), so guidance has nothing to amplify. This term rewards a
    prediction that depends on the direction word, in the units of the MSE, and is zero once it does
    (pred, pred_reversed, noise: (B, C, F, h, w))."""
    e_true = (pred.float() - noise).pow(2).mean(dim=(1, 2, 3, 4))
    e_rev = (pred_reversed.float() - noise).pow(2).mean(dim=(1, 2, 3, 4))
    return torch.relu(margin * e_true.detach() - (e_rev - e_true)).mean()


def mixed_prior_noise(z: torch.Tensor, share: float) -> torch.Tensor:
    """Noise like z (B, C, F, h, w) of which `share` (in variance) is one draw common to a window's frames and
    the rest each frame's own (PYoCo's mixed noise prior, Ge et al. 2023); unit variance either way.

    Why: sampled from independent noise, the demo model puts the object in different places in different
    frames and the windows disagree at their seams (teleports); noise with a common part fixes the layout across
    frames, and training on the same prior teaches the model to move the object away from it when the caption
    says so. share 0 is plain independent noise."""
    own = torch.randn_like(z)
    if share <= 0:
        return own
    common = torch.randn_like(z[:, :, :1]).expand_as(z)
    return share ** 0.5 * common + (1 - share) ** 0.5 * own


TRAINABLE = ("modules", "all")  # what stage 3 trains: the motion modules alone, or every UNet weight


def trainable_groups(motion, which: str, lr_2d_scale: float) -> list[dict]:
    """Param groups of a UNetMotionModel for stage 3, unfreezing what `which` names.

    Why more than the motion modules: diffusers' motion modules never receive the text (`motion_module(h,
    num_frames=...)`, and MotionAdapter builds them without cross-attention), so "moving right" can only reach
    them through the features the 2D layers write before them. "all" trains the 2D weights too: the
    cross-attention to the caption can write the direction word into those features, and the spatial layers
    adapt to the motion modules' output (the only place a frame's position in time enters). The 2D weights
    learn at lr x `lr_2d_scale`; the image UNet is stored apart in unet_2d/ whenever they change
    (`save_bundle`). (Training only the 2D attention blocks segfaulted in CPU autograd, torch 2.13.)"""
    if which not in TRAINABLE:
        raise ValueError(f"Unknown --motion-train '{which}'. Choose one of: {', '.join(TRAINABLE)}.")
    motion.freeze_unet2d_params()  # leaves the motion modules trainable
    two_d = []
    for name, p in motion.named_parameters():
        if "motion_modules" in name:
            continue
        if which == "all":
            p.requires_grad_(True)
            two_d.append(p)
    modules = [p for n, p in motion.named_parameters() if "motion_modules" in n]
    return [{"params": modules, "lr_scale": 1.0}] + ([{"params": two_d, "lr_scale": lr_2d_scale}] if two_d else [])


def motion_loss(pred: torch.Tensor, noise: torch.Tensor, temporal_weight: float) -> tuple[torch.Tensor, dict]:
    """Epsilon MSE plus `temporal_weight` x the MSE of the error's frame-to-frame differences.

    The second term is zero for an error shared by all frames and largest for one that flips from frame to
    frame, so it weights up exactly what shows as flicker, jumps and identity changes between adjacent frames
    (pred, noise: (B, C, F, h, w))."""
    err = pred.float() - noise
    mse = err.pow(2).mean()
    temporal = err.diff(dim=2).pow(2).mean()
    return mse + temporal_weight * temporal, {"mse": mse, "temporal": temporal}


def text_encoder_group(text_encoder, lr_scale: float, token_ids=None) -> tuple[torch.nn.Module, list[dict]]:
    """The text encoder stage 3 conditions on, and its param group: a trainable copy when `lr_scale` > 0
    (the caller's encoder, which the image pipelines keep, is never changed), else the encoder itself, frozen.

    `token_ids` (e.g. the direction words): only those rows of the token-embedding table learn, without weight
    decay, and every other weight stays as it was. Why: trained whole, the encoder bought direction with colour
    (red/blue 24.8 -> 11.7 apart while left/right went 0.89 -> 20.8); with CLIP's causal attention, the words
    before the direction word ("a red circle") then keep exactly their states."""
    if lr_scale <= 0:
        return text_encoder.eval().requires_grad_(False), []
    video_text = copy.deepcopy(text_encoder).float().train().requires_grad_(token_ids is None)
    if token_ids is None:
        return video_text, [{"params": list(video_text.parameters()), "lr_scale": float(lr_scale)}]
    table = video_text.get_input_embeddings().weight.requires_grad_(True)
    rows = torch.zeros(table.shape[0], 1, dtype=table.dtype, device=table.device)
    rows[list(token_ids)] = 1
    table.register_hook(lambda grad: grad * rows)
    return video_text, [{"params": [table], "lr_scale": float(lr_scale), "weight_decay": 0.0}]


def text_word_ids(tokenizer, words: str) -> list[int] | None:
    """Token ids of the space- or comma-separated `words` (None: train the whole encoder)."""
    words = words.replace(",", " ").split()
    if not words:
        return None
    return sorted({i for w in words for i in tokenizer(w, add_special_tokens=False).input_ids})


def train_motion_modules(motion, text_encoder, tokenizer, data: MotionData, sched, cfg, stage_cls, minutes: float,
                         device, autocast) -> tuple[torch.nn.Module, torch.nn.Module, dict]:
    """Train the motion modules of `motion` (a UNetMotionModel), the 2D parts cfg.motion_train names and, with
    cfg.lr_text_scale > 0, a copy of the text encoder; returns the EMA copies of the model and of the text
    encoder (`text_encoder` itself when frozen) and the stage summary."""
    groups = trainable_groups(motion, cfg.motion_train, cfg.lr_2d_scale)
    text_encoder, text_groups = text_encoder_group(text_encoder, cfg.lr_text_scale,
                                                   text_word_ids(tokenizer, cfg.text_words))
    motion.train()
    names = [n for n, p in motion.named_parameters() if p.requires_grad]
    trainable = [p for p in motion.parameters() if p.requires_grad]
    ema = copy.deepcopy(motion).eval().requires_grad_(False)
    ema_params = [dict(ema.named_parameters())[n] for n in names]
    text_ema = copy.deepcopy(text_encoder).eval().requires_grad_(False) if text_groups else text_encoder
    if text_groups:
        trainable += list(text_encoder.parameters())
        ema_params += list(text_ema.parameters())
    alphas = sched.alphas_cumprod.to(device)
    empty = torch.tensor(tokenizer([""], padding="max_length", max_length=data.ids.shape[1]).input_ids,
                         device=device)
    st = stage_cls("motion", groups + text_groups, cfg.lr_motion, minutes, cfg.warmup_motion, cfg.log_every)
    while st.running():
        frames = sample_windows(data, cfg.batch_motion)
        z = (data.means[frames] + data.stds[frames] * torch.randn_like(data.means[frames])) * data.scaling
        z = z.permute(0, 2, 1, 3, 4)  # (B, C, F, h, w)
        t = torch.randint(0, sched.config.num_train_timesteps, (z.shape[0],), device=device)
        noise = mixed_prior_noise(z, cfg.noise_share)
        a = alphas[t].view(-1, 1, 1, 1, 1)
        zt = a.sqrt() * z + (1 - a).sqrt() * noise
        drop = caption_drop(z.shape[0], cfg.caption_dropout, device)
        with torch.set_grad_enabled(bool(text_groups)), autocast:
            states = window_condition(text_encoder, data, frames, empty, cfg.caption_dropout, drop)
        with autocast:
            pred = motion(zt, t, encoder_hidden_states=states.repeat_interleave(WINDOW, dim=0)).sample
        loss, parts = motion_loss(pred, noise, cfg.temporal_loss)
        if cfg.direction_contrast > 0:
            rows = contrast_rows(data, frames, t, drop)
            parts["contrast"] = loss.new_zeros(())  # logged every step, so the log's columns stay aligned
            if len(rows):
                with torch.set_grad_enabled(bool(text_groups)), autocast:
                    flipped = reversed_condition(text_encoder, data, frames[rows])
                with autocast:
                    pred_rev = motion(zt[rows], t[rows], encoder_hidden_states=flipped.repeat_interleave(WINDOW, 0)).sample
                parts["contrast"] = direction_contrast(pred[rows], pred_rev, noise[rows], cfg.contrast_margin)
                loss = loss + cfg.direction_contrast * parts["contrast"]
        st.update(loss, **parts)
        decay = min(cfg.ema_motion, (1 + st.step) / (10 + st.step))
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, trainable, 1 - decay)
    return ema, text_ema, st.summary()


def probe(unet, vae, text_encoder, tokenizer, sched, cfg, device, autocast, log: dict, when: str) -> None:
    """`genl.demo.motion_probe.direction_probe` on cfg.probe_clips held-out clips, into log["direction_probe"]."""
    if cfg.probe_clips <= 0:
        return
    from .motion_probe import direction_probe, probe_windows

    clips = probe_windows(cfg.probe_clips, cfg.model.size)
    result = direction_probe(unet.eval(), vae, text_encoder, tokenizer, sched, clips, device, autocast)
    log.setdefault("direction_probe", {})[when] = result
    print(f"direction probe ({when}): {result}", flush=True)


def motion_data_for(vae, tokenizer, cfg, device, autocast, log: dict) -> MotionData:
    """Render cfg.motion_videos long videos and encode them; timings go to `log`."""
    t0 = time.time()
    specs = video_specs(cfg.motion_videos, cfg.seed, tuple(cfg.motion_mix))
    videos = render_videos(specs, cfg.model.size)
    log["motion_render_seconds"] = round(time.time() - t0, 1)
    data = encode_videos(vae, videos, specs, tokenizer, cfg.model.max_length, device, autocast)
    log["motion_frames"] = int(data.means.shape[0])
    log["motion_videos"] = len(specs)
    print(f"motion data: {len(specs)} videos, {data.means.shape[0]} frames, {len(data.ids)} segments "
          f"in {time.time() - t0:.0f}s", flush=True)
    return data


def train_motion_stage_only(cfg) -> dict:
    """Retrain the motion modules on top of the bundle in cfg.init; write the new bundle to cfg.out."""
    from diffusers import AnimateDiffPipeline, MotionAdapter, UNetMotionModel

    from genl.models import image_text_encoder_of_animatediff, image_unet_of_animatediff, strip_motion_modules

    from .train import Stage, _autocast, start_run

    t0 = time.time()
    device, log = start_run(cfg)
    log["stages"] = {}
    init = Path(cfg.init)
    pipe = AnimateDiffPipeline.from_pretrained(init, torch_dtype=torch.float32)
    vae = pipe.vae.to(device).eval().requires_grad_(False)
    text_encoder = pipe.text_encoder.to(device).eval().requires_grad_(False)
    autocast = _autocast(device)
    # the bundle decides the frame size and caption length, not cfg.model
    cfg.model.size, cfg.model.max_length = vae.config.sample_size, pipe.tokenizer.model_max_length
    data = motion_data_for(vae, pipe.tokenizer, cfg, device, autocast, log)

    old = MotionAdapter.from_pretrained(init / "motion_adapter")
    layers = cfg.model.motion_transformer_layers
    keep = cfg.motion_warm_start and old.config.motion_transformer_layers_per_block == layers
    adapter = old if keep else MotionAdapter.from_config(
        {**old.config, "motion_transformer_layers_per_block": layers,
         "motion_transformer_layers_per_mid_block": layers})
    log["motion_warm_start"] = bool(keep)
    log["motion_adapter"] = json.loads(_public(adapter.config))
    image_unet = image_unet_of_animatediff(init, pipe.unet)
    image_text = image_text_encoder_of_animatediff(init, text_encoder)
    # the video model's 2D weights (changed by an earlier stage 3 that trained them) and its motion modules
    motion = pipe.unet if keep else UNetMotionModel.from_unet2d(strip_motion_modules(pipe.unet, init), adapter)
    motion = motion.float().to(device)
    del pipe.unet
    minutes = cfg.minutes_motion
    if cfg.max_minutes > 0:
        minutes = max(0.05, min(minutes, cfg.max_minutes - (time.time() - t0) / 60 - 0.3 - 0.1 * (cfg.probe_clips > 0)))
    probe(motion, vae, text_encoder, pipe.tokenizer, pipe.scheduler, cfg, device, autocast, log, "before")
    ema, video_text, log["stages"]["motion"] = train_motion_modules(motion, text_encoder, pipe.tokenizer, data,
                                                                    pipe.scheduler, cfg, Stage, minutes, device,
                                                                    autocast)
    probe(ema, vae, video_text, pipe.tokenizer, pipe.scheduler, cfg, device, autocast, log, "after")
    save_bundle(cfg.out, vae, video_text, pipe.tokenizer, ema, adapter, pipe.scheduler, image_unet, image_text)
    log["total_seconds"] = round(time.time() - t0, 1)
    Path(cfg.out, "training_log_motion.json").write_text(json.dumps(log, indent=1))
    if (init / "training_log.json").exists() and Path(cfg.out).resolve() != init.resolve():
        shutil.copy(init / "training_log.json", Path(cfg.out, "training_log.json"))
    print(f"saved {cfg.out} in {log['total_seconds']}s", flush=True)
    return log


def _public(config) -> str:
    """A config's own settings (no `_name_or_path` etc.), tuples as lists, for comparing two configs."""
    return json.dumps({k: v for k, v in dict(config).items() if not k.startswith("_")}, sort_keys=True)


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(v.float().cpu(), b[k].float().cpu()) for k, v in a.items())


def save_bundle(out, vae, text_encoder, tokenizer, motion, adapter, scheduler, image_unet,
                image_text_encoder=None) -> None:
    """fp16 AnimateDiff folder (UNet sharded at 15 MB) plus the image UNet in unet_2d/: its config only when
    the motion UNet holds the same 2D weights, its weights too when stage 3 trained them; likewise the image
    pipelines' text encoder in text_encoder_2d/ only when stage 3 trained the video model's."""
    from diffusers import AnimateDiffPipeline

    motion = motion.eval().requires_grad_(False)
    adapter.load_state_dict({k: v for k, v in motion.state_dict().items() if "motion_modules" in k}, strict=True)
    image = image_unet.state_dict()
    same_2d = all(torch.equal(v.float().cpu(), image[k].float().cpu())
                  for k, v in motion.state_dict().items() if "motion_modules" not in k)
    same_text = image_text_encoder is None or _same_weights(text_encoder.state_dict(),
                                                            image_text_encoder.state_dict())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "text_encoder_2d", ignore_errors=True)
    if not same_text:
        image_text_encoder.half().cpu().save_pretrained(out / "text_encoder_2d")
    pipe = AnimateDiffPipeline(vae=vae.half().cpu(), text_encoder=text_encoder.half().cpu(), tokenizer=tokenizer,
                               unet=motion.half().cpu(), motion_adapter=adapter.half().cpu(), scheduler=scheduler)
    pipe.save_pretrained(out, max_shard_size="15MB")
    for old in [*(out / "unet_2d").glob("*.safetensors"), *(out / "unet_2d").glob("*.index.json")]:
        old.unlink()
    if same_2d:
        image_unet.save_config(out / "unet_2d")
    else:
        image_unet.half().cpu().save_pretrained(out / "unet_2d", max_shard_size="15MB")
