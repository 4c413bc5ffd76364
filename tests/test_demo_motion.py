"""The demo model's motion stage (windows of long videos, the pipeline's text mix) and the motion benchmark's
direction rule (issue 12)."""
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from genl.demo.train_motion import WINDOW, MotionData, sample_windows, window_condition
from genl.demo.world import long_video_timeline, parse_caption, random_long_video, render_long_video
from genl.demo.world_parse import parse_frame
from genl.timeline import Timeline, mix_embeddings
from tiny import cached_tiny_models, tiny_text_encoder, tiny_tokenizer, tiny_unet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from quality_motion import motion_followed  # noqa: E402


def _data(lengths, segments_per_video):
    """MotionData with dummy latents whose frame value is its index, and two captions per video."""
    tok = tiny_tokenizer()
    total = sum(lengths)
    seg, ids, captions = [], [], ["a red circle moving left over grass", "a blue square moving up over sky"]
    for n, k in zip(lengths, segments_per_video):
        cut = n // 2 if k == 2 else n
        base = len(ids)
        seg += [base] * cut + [base + 1] * (n - cut)
        ids += tok(captions[:k], padding="max_length", max_length=16).input_ids
    lengths_t = torch.tensor(lengths)
    frames = torch.arange(total, dtype=torch.float32).view(-1, 1, 1, 1).expand(total, 4, 2, 2)
    return tok, MotionData(frames, torch.zeros_like(frames), torch.tensor(seg), torch.cumsum(lengths_t, 0) - lengths_t,
                           lengths_t, torch.tensor(ids), 1.0)


def test_windows_stay_inside_one_video():
    _, data = _data([16, 40, 96], [1, 1, 2])
    torch.manual_seed(0)
    frames = sample_windows(data, 500)
    ends = data.offsets + data.lengths
    video = torch.bucketize(frames[:, 0].contiguous(), ends, right=True)
    assert frames.shape == (500, WINDOW)
    assert (frames[:, -1] < ends[video]).all() and (frames[:, 0] >= data.offsets[video]).all()
    assert (frames.diff(dim=1) == 1).all()
    assert len(set(video.tolist())) == 3  # every video is drawn


def test_window_condition_is_the_pipelines_mix():
    tok, data = _data([64], [2])
    te = tiny_text_encoder(len(tok))
    empty = torch.tensor(tok([""], padding="max_length", max_length=16).input_ids)
    frames = torch.arange(24, 24 + WINDOW)[None]  # 8 frames of each segment
    with torch.no_grad():
        got = window_condition(te, data, frames, empty, dropout=0.0)
        tl = Timeline.from_rows([(0, 31, "a red circle moving left over grass"),
                                 (32, 63, "a blue square moving up over sky")])
        pos = te(data.ids)[0]
        want = mix_embeddings(pos, tl.clip_prompt_mix([(24, 40)], 64), "linear")
        dropped = window_condition(te, data, frames, empty, dropout=1.0)
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(dropped, te(empty)[0], atol=1e-6)


def test_motion_rule_reads_rendered_motion_and_rejects_reversed():
    spec = random_long_video(1003)
    frames = render_long_video(spec, 64)
    parsed = [parse_frame(f) for f in frames]
    for a, b, text in long_video_timeline(spec):
        motion = parse_caption(text)["motion"]
        assert motion_followed(parsed[a:b + 1], motion), text
        if motion in ("left", "right", "up", "down", "grow"):
            assert not motion_followed(parsed[a:b + 1][::-1], motion), text


def _stage_alone(tmp_path, which: str, **extra):
    from genl.demo.train import TrainConfig, train

    init = tmp_path / "init"
    shutil.copytree(cached_tiny_models()["animatediff"], init)
    tiny_unet().save_config(init / "unet_2d")
    out = tmp_path / which
    cfg = TrainConfig(**{**dict(stage="motion", init=str(init), out=str(out), minutes_motion=0.01, motion_videos=2,
                             motion_mix=(1.0, 1.0, 0.0), batch_motion=1, warmup_motion=1, log_every=1,
                             motion_train=which, probe_clips=2), **extra})
    return init, out, train(cfg)


def _unet_weights(folder):
    from safetensors.torch import load_file

    return load_file(next((folder / "unet").glob("*.safetensors")))


def test_motion_stage_alone_keeps_2d_weights(tmp_path):
    init, out, log = _stage_alone(tmp_path, "modules")
    before, after = _unet_weights(init), _unet_weights(out)
    motion_keys = [k for k in before if "motion_modules" in k]
    assert log["stages"]["motion"]["steps"] >= 1 and log["motion_warm_start"]
    # the bundle is saved in fp16: compare against the initial weights rounded the same way
    assert all(torch.equal(before[k].half(), after[k]) for k in before if "motion_modules" not in k)
    assert any(not torch.equal(before[k].half(), after[k]) for k in motion_keys)
    assert (out / "unet_2d" / "config.json").exists() and (out / "training_log_motion.json").exists()
    assert not list((out / "unet_2d").glob("*.safetensors"))  # the 2D weights are stored once
    assert not (out / "text_encoder_2d").exists()  # the text encoder too, when frozen
    assert set(log["direction_probe"]) == {"before", "after"}


def test_text_aware_motion_stage_keeps_the_image_unet_apart(tmp_path):
    """--motion-train all: the video model's 2D weights learn, the image pipelines load the untouched 2D
    weights from unet_2d/, and the bundle still loads with diffusers' own classes."""
    from diffusers import AnimateDiffPipeline

    from genl.models import image_unet_of_animatediff

    init, out, log = _stage_alone(tmp_path, "all")
    before, after = _unet_weights(init), _unet_weights(out)
    changed = {k for k in before if "motion_modules" not in k and not torch.equal(before[k].half(), after[k])}
    assert any(".attentions." in k and "attn2" in k for k in changed)  # the cross-attention to the caption
    motion = AnimateDiffPipeline.from_pretrained(out).unet
    image = image_unet_of_animatediff(out, motion).state_dict()
    assert set(image) == {k for k in before if "motion_modules" not in k}
    assert all(torch.equal(before[k].half(), image[k].half()) for k in image)


def _folder_weights(folder):
    from safetensors.torch import load_file

    return {k: v for f in sorted(folder.glob("*.safetensors")) for k, v in load_file(f).items()}


def test_motion_stage_can_train_the_video_text_encoder_apart(tmp_path):
    """--lr-text-scale > 0: the video model's text encoder learns (so direction words can come apart), the
    image pipelines load the untouched one from text_encoder_2d/, and a second motion run on that bundle keeps
    text_encoder_2d/ as the image encoder rather than the trained one."""
    from genl.models import ModelManager

    init, out, log = _stage_alone(tmp_path, "modules", lr_text_scale=1.0, lr_motion=1e-2)
    before, video, image = (_folder_weights(f / d) for f, d in ((init, "text_encoder"), (out, "text_encoder"),
                                                                  (out, "text_encoder_2d")))
    assert set(before) == set(video) == set(image)
    assert any(not torch.equal(before[k].half(), video[k]) for k in before)
    assert all(torch.equal(before[k].half(), image[k]) for k in before)
    loaded = ModelManager().get("tuning_free", str(out), device="cpu", precision="fp32").text_encoder.state_dict()
    assert all(torch.equal(image[k].float(), loaded[k]) for k in image if k in loaded)

    again = tmp_path / "again"
    from genl.demo.train import TrainConfig, train

    train(TrainConfig(stage="motion", init=str(out), out=str(again), minutes_motion=0.01, motion_videos=2,
                      motion_mix=(1.0, 1.0, 0.0), batch_motion=1, warmup_motion=1, log_every=1,
                      motion_train="modules", probe_clips=0))
    assert all(torch.equal(image[k], v) for k, v in _folder_weights(again / "text_encoder_2d").items())
    assert all(torch.equal(video[k], v) for k, v in _folder_weights(again / "text_encoder").items())


def test_motion_loss_weights_frame_to_frame_error():
    from genl.demo.train_motion import motion_loss

    noise = torch.zeros(1, 1, 4, 2, 2)
    shared = torch.ones_like(noise)  # the same error in every frame: no flicker
    flicker = torch.tensor([1.0, -1.0, 1.0, -1.0]).view(1, 1, 4, 1, 1).expand_as(noise)
    (l_shared, p_shared), (l_flicker, p_flicker) = (motion_loss(p, noise, 1.0) for p in (shared, flicker))
    assert p_shared["mse"] == p_flicker["mse"] == 1.0
    assert p_shared["temporal"] == 0.0 and p_flicker["temporal"] == 4.0
    assert l_flicker > l_shared


def test_mixed_prior_noise_shares_its_part_across_a_windows_frames_only():
    """--noise-share: unit variance; frames of one window correlate by the share, windows stay independent;
    share 0 is the plain independent draw (same random stream as before the option)."""
    from genl.demo.train_motion import mixed_prior_noise

    z = torch.zeros(256, 4, 16, 8, 8)
    torch.manual_seed(0)
    plain = mixed_prior_noise(z, 0.0)
    torch.manual_seed(0)
    torch.testing.assert_close(plain, torch.randn_like(z))
    n = mixed_prior_noise(z, 0.4)
    assert abs(float(n.var()) - 1) < 0.02
    assert abs(float((n[:, :, 2] * n[:, :, 11]).mean()) - 0.4) < 0.02  # two frames of the same windows
    assert abs(float((n[:128, :, 2] * n[128:, :, 2]).mean())) < 0.02   # the same frame of different windows


def test_direction_probe_reverses_only_the_direction():
    from genl.demo.motion_probe import probe_windows

    frames, true, flipped = probe_windows(4, 32)
    assert frames.shape == (4, 16, 32, 32, 3)
    for a, b in zip(true, flipped):
        pa, pb = parse_caption(a), parse_caption(b)
        assert pa["motion"] in ("left", "right", "up", "down") and pb["motion"] != pa["motion"]
        assert {k: v for k, v in pa.items() if k != "motion"} == {k: v for k, v in pb.items() if k != "motion"}


def test_smoke_cli_trains_every_stage(tmp_path):
    from genl.demo.__main__ import main

    assert main(["train", "--smoke", "--out", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "unet_2d" / "diffusion_pytorch_model.safetensors").exists()  # default: all
    assert (tmp_path / "m" / "training_log.json").exists()


def test_config_text():
    from quality_motion import parse_config

    assert parse_config("ddim:50:4") == ("ddim", 50, 4, {})
    assert parse_config("dpm++:15:8:trailing") == ("dpm++", 15, 8, {"timestep_spacing": "trailing"})
    assert parse_config("dpm++:10:16:settled:motion") == ("dpm++", 10, 16, {"schedule": "settled", "fusion": "motion"})
    assert parse_config("dpm++:10:16:motion:share0.3") == ("dpm++", 10, 16, {"fusion": "motion", "noise_share": 0.3})
    for bad in ("ddim:50", "ddim:x:4", "ddim:50:4:sideways", "ddim:50:4:sharex", "ddim:50:4:share0.1:share0.2"):
        try:
            parse_config(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_direction_contrast_is_a_hinge_on_the_reversed_captions_error():
    """Zero once the reversed caption predicts the noise worse by the margin; otherwise it pulls the true error
    down and the reversed one up, in MSE units."""
    from genl.demo.train_motion import direction_contrast

    noise = torch.zeros(2, 1, 2, 1, 1)
    pred = torch.full_like(noise, 0.1, requires_grad=True)           # e_true = 0.01 for both windows
    far = torch.full_like(noise, 0.2)                                # e_rev = 0.04: 3x worse, past the margin
    assert direction_contrast(pred, far, noise, margin=0.1).item() == 0.0
    same = pred.detach().clone().requires_grad_(True)                # the direction word changes nothing
    loss = direction_contrast(pred, same, noise, margin=0.1)
    assert abs(loss.item() - 0.1 * 0.01) < 1e-9
    loss.backward()
    assert (pred.grad > 0).all() and (same.grad < 0).all()          # true error down, reversed error up


def test_contrast_uses_directional_captioned_noisy_windows_only():
    from genl.demo.train_motion import contrast_rows

    _, data = _data([16, 16], [1, 1])
    data.directional = torch.tensor([True, False])                  # "moving left" / (say) "staying still"
    frames = torch.stack([torch.arange(16), torch.arange(16, 32), torch.arange(16), torch.arange(16)])
    t = torch.tensor([900, 900, 100, 900])
    dropped = torch.tensor([False, False, False, True])            # the last one got the empty caption
    assert contrast_rows(data, frames, t, dropped).tolist() == [0]


def test_motion_data_carries_direction_reversed_captions():
    """encode_videos pairs every segment's caption with its reversed one; still objects keep theirs."""
    from diffusers import AutoencoderKL

    from genl.demo.motion_probe import REVERSED
    from genl.demo.train_motion import encode_videos, render_videos, video_specs

    vae = AutoencoderKL.from_pretrained(cached_tiny_models()["animatediff"], subfolder="vae")
    tok = tiny_tokenizer()
    specs = video_specs(6, 0, (1.0, 1.0, 1.0))
    data = encode_videos(vae, render_videos(specs, 32), specs, tok, 16, torch.device("cpu"),
                         torch.autocast("cpu", enabled=False))
    segs = [s for spec in specs for s in spec.segments]
    assert data.reversed_ids.shape == data.ids.shape and len(data.directional) == len(segs)
    for i, seg in enumerate(segs):
        same = torch.equal(data.ids[i], data.reversed_ids[i])
        assert same == (seg.motion not in REVERSED) and bool(data.directional[i]) == (seg.motion in REVERSED)


def test_motion_stage_runs_with_the_direction_contrast(tmp_path):
    """--direction-contrast: the stage trains end to end and logs the contrast term beside the MSE."""
    _, out, log = _stage_alone(tmp_path, "modules", direction_contrast=1.0, motion_mix=(1.0, 0.0, 0.0),
                               motion_videos=4, batch_motion=4)
    rows = log["stages"]["motion"]["loss"]
    assert rows and all("contrast" in r for r in rows)
    assert any(r["contrast"] > 0 for r in rows)  # the reversed captions' forward ran and the hinge was active
    assert (out / "motion_adapter").exists()


def test_text_encoder_group_can_train_only_some_words_embeddings():
    """--text-words: only the named words' rows of the token table learn (no weight decay elsewhere); every
    other weight, and the caller's encoder, stay exactly as they were."""
    from genl.demo.train_motion import text_encoder_group, text_word_ids

    tok = tiny_tokenizer()
    te = tiny_text_encoder(len(tok.get_vocab()))
    before = {k: v.clone() for k, v in te.state_dict().items()}
    ids = text_word_ids(tok, "left, right")
    assert ids and len(ids) == 2 and text_word_ids(tok, " ") is None
    video, groups = text_encoder_group(te, 1.0, ids)
    opt = torch.optim.AdamW([dict(g, lr=0.1) for g in groups], weight_decay=0.5)
    batch = tok(["a red circle moving left over grass", "a red circle moving right over grass"],
                padding="max_length", max_length=16, return_tensors="pt").input_ids
    for _ in range(3):
        opt.zero_grad()
        video(batch)[0].pow(2).mean().backward()
        opt.step()
    after = video.state_dict()
    key = next(k for k in before if k.endswith("token_embedding.weight"))
    changed = (after[key] != before[key]).any(dim=1).nonzero().flatten().tolist()
    assert changed == ids
    assert all(torch.equal(after[k], before[k]) for k in before if k != key)
    assert all(torch.equal(v, before[k]) for k, v in te.state_dict().items())
